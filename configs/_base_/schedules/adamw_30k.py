# AdamW 4e-5, wd 0.01, 1k linear warm-up from 0.01x, cosine to 0.1x,
# 30k iterations (METHOD section 1).
max_iters = 30000
warmup_iters = 1000
base_lr = 4e-5

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=5000)
val_cfg = dict(type='VideoRetrievalValLoop')
test_cfg = dict(type='VideoRetrievalTestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.01))

param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=base_lr * 0.1, by_epoch=False,
         begin=warmup_iters, end=max_iters, T_max=max_iters - warmup_iters)
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
