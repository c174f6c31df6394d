# FIVR-200K evaluation from a public HDF5 feature file.
fivr_annotation = 'data/fivr/annotation.pickle'  # <-- public FIVR pickle
fivr_features = 'data/fivr/fivr_200k_features.hdf5'  # <-- HDF5 features
fivr_easy = None  # optional easy-duplicates list for the "hard" variant

test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(
            type='FIVR',
            ann_file=fivr_annotation,
            version='200k',
            easy_duplicates=fivr_easy),
        feature_file=fivr_features))
# the metric evaluates with the dataset's annotation (loaded once)
test_evaluator = dict(type='RetrievalAPMetric')
