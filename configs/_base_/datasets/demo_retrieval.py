# The demo near-duplicate benchmark (tools/data/make_demo_dataset.py) as a
# retrieval evaluation: 8 queries against 48 database videos, decoded at
# 1 fps, short side 128, centre crop 112. Used by the CPU demo and by the
# examples of configs/mixing/.
demo_root = 'data/demo'
eval_crop_size = 112

eval_pipeline = [
    dict(type='DecodeRetrievalVideo', short_side=128, crop=eval_crop_size),
    dict(type='PackRetrievalInputs')
]
val_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        type='RetrievalDataset',
        annotation=dict(
            type='JSON',
            ann_file=f'{demo_root}/eval/annotation.json',
            name='demo'),
        video_pattern=demo_root + '/eval/videos/{id}.mp4',
        pipeline=eval_pipeline))
# the metric evaluates with the dataset's annotation (loaded once)
val_evaluator = dict(type='RetrievalAPMetric')
test_dataloader = val_dataloader
test_evaluator = val_evaluator
val_cfg = dict(type='VideoRetrievalValLoop')
test_cfg = dict(type='VideoRetrievalTestLoop')
