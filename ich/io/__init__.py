"""Files in and out, knowing nothing of networks: DICOM, NIfTI and image readers, the slice PNG
and zip stores, the raw-cohort tables every source writes, atomic writes and file digests."""
