# FIVR-5K evaluation from a public HDF5 feature file ([T, 9, 512] per id).
fivr_annotation = 'data/fivr/annotation.pickle'  # <-- public FIVR pickle
fivr_features = 'data/fivr/fivr_5k_features.hdf5'  # <-- HDF5 features
fivr_easy = None  # optional easy-duplicates list for the "hard" variant

fivr5k = dict(
    type='FIVR', ann_file=fivr_annotation, version='5k',
    easy_duplicates=fivr_easy)
test_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='RetrievalDataset',
        annotation=fivr5k,
        feature_file=fivr_features))
test_evaluator = dict(type='RetrievalAPMetric', annotation=fivr5k)
val_dataloader = test_dataloader
val_evaluator = test_evaluator
