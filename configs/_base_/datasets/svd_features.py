# SVD test set evaluation from a public HDF5 feature file.
svd_ground_truth = 'data/svd/test_groundtruth'  # <-- "query candidate label"
svd_unlabeled = 'data/svd/unlabeled-data-id'  # <-- optional distractor ids
svd_features = 'data/svd/svd_features.hdf5'  # <-- HDF5 features

test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(
            type='SVD',
            ann_file=svd_ground_truth,
            unlabeled_file=svd_unlabeled),
        feature_file=svd_features))
# the metric evaluates with the dataset's annotation (loaded once)
test_evaluator = dict(type='RetrievalAPMetric')
