# EVVE evaluation from a public HDF5 feature file.
evve_annotation = 'data/evve/annotation.pickle'  # <-- public EVVE pickle
evve_features = 'data/evve/evve_features.hdf5'  # <-- HDF5 features

evve = dict(type='EVVE', ann_file=evve_annotation)
test_dataloader = dict(
    batch_size=16,
    num_workers=2,
    dataset=dict(
        type='RetrievalDataset', annotation=evve,
        feature_file=evve_features))
test_evaluator = dict(type='RetrievalAPMetric', annotation=evve)
