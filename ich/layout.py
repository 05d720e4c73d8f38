"""Where the stages of the DVC pipeline read and write, relative to the project root.

``dvc.yaml`` names the same paths as deps and outs (``tests/test_dvc_deps.py`` checks that
every path here is one of them); stage scripts and ``ich predict`` take them from here rather
than spelling them out.
"""

from pathlib import Path

RAW = Path("data/raw")  # download: the raw cohort (manifest, labels, source.json)
SOURCE = RAW / "source.json"
CONVERTED = Path("data/converted")  # convert: windowed slices and their index
INDEX = CONVERTED / "index.csv"
SPLIT_DIR = Path("data/split")  # split: the patient-level split
SPLIT = SPLIT_DIR / "split.csv"
MODELS = Path("data/models")  # train@<model>: one folder per classifier
ENSEMBLE = Path("data/ensemble")
SEGMENTERS = Path("data/segmenters")  # train_segmenter@<name>
BUNDLE = Path("data/bundle")  # bundle: the trained pipeline as one folder to hand over (ich.predict.bundle)
EVALUATION = Path("data/evaluation")
SEGMENTATION = Path("data/segmentation")
REPORTS = Path("data/reports")
SITE = Path("data/site")
EXTERNAL = Path("data/external")
CHECKPOINTS = Path("data/checkpoints")  # not DVC outputs: a killed training run resumes from here
LOGS = Path("data/logs")  # not DVC outputs: wall times, which no two runs share
METRICS = Path("metrics")
PLOTS = Path("plots")
