# FIVR-5K evaluation from a public HDF5 feature file ([T, 9, 512] per id).
fivr_annotation = 'data/fivr/annotation.pickle'  # <-- public FIVR pickle
fivr_features = 'data/fivr/fivr_5k_features.hdf5'  # <-- HDF5 features
fivr_easy = None  # optional easy-duplicates list for the "hard" variant

test_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(
            type='FIVR',
            ann_file=fivr_annotation,
            version='5k',
            easy_duplicates=fivr_easy),
        feature_file=fivr_features))
# the metric evaluates with the dataset's annotation (loaded once)
test_evaluator = dict(type='RetrievalAPMetric')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
