# Retrieval evaluation from an HDF5 feature file (one dataset per video id,
# [T, D] or [T, R, D], float16/float32) with an annotation in our JSON
# format. Swap the dataset's `annotation` for
# dict(type='FIVR', ann_file=..., version='5k'),
# dict(type='EVVE', ...), dict(type='SVD', ...) or dict(type='CC_WEB_VIDEO',
# ...). For raw videos replace `feature_file` by
#   video_pattern='data/videos/{id}.mp4',
#   pipeline=[dict(type='DecodeRetrievalVideo'),
#             dict(type='PackRetrievalInputs')]
# (and use a model with a backbone).
feature_file = 'data/retrieval/features.h5'

test_dataloader = dict(
    batch_size=4,  # queries per indexing batch
    num_workers=2,
    persistent_workers=False,
    collate_fn=dict(type='retrieval_collate'),
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(
            type='JSON', ann_file='data/retrieval/annotation.json'),
        feature_file=feature_file))
# the metric evaluates with the dataset's annotation (loaded once)
test_evaluator = dict(type='RetrievalAPMetric')
test_cfg = dict(
    type='VideoRetrievalTestLoop',
    query_batch_size=16,
    target_batch_size=16,
    save_similarities=False,
    log_interval=50)

val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(
    type='VideoRetrievalValLoop', query_batch_size=16, target_batch_size=16)
