"""Training the bleed segmenters of Hssayeni 2020: their settings (``segment.<name>``), the
training crops, the U-Net's fit and the grey-level band's grid search, and the dispatch that
fits any of them (:mod:`ich.train.segmenter.fit`)."""
