# EVVE evaluation from a public HDF5 feature file.
evve_annotation = 'data/evve/annotation.pickle'  # <-- public EVVE pickle
evve_features = 'data/evve/evve_features.hdf5'  # <-- HDF5 features

test_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(type='EVVE', ann_file=evve_annotation),
        feature_file=evve_features))
# the metric evaluates with the dataset's annotation (loaded once)
test_evaluator = dict(type='RetrievalAPMetric')
