# AdamW 4e-5, wd 0.01, 1k linear warm-up from 0.01x, cosine to 0.1x,
# 30k iterations (docs/method.md section 1). As the authors' schedule, the
# cosine runs on the absolute iteration t after the warm-up:
#   lr(t) = 0.1 lr + 0.45 lr (1 + cos(pi t / 30000))  for t >= 1000
# (mmengine's CosineAnnealingLR(begin=1000) would use t - 1000). The
# warm-up is the authors' too: lr(t) = 0.01 lr + 0.99 lr t / 1000 for
# t < 1000 (mmengine's LinearLR reaches end_factor at t = end - 1, hence
# end_factor = 0.01 + 0.99 * 999 / 1000).
max_iters = 30000
warmup_iters = 1000
base_lr = 4e-5

train_cfg = dict(
    type='IterBasedTrainLoop', max_iters=max_iters, val_interval=5000)
val_cfg = dict(type='VideoRetrievalValLoop')
test_cfg = dict(type='VideoRetrievalTestLoop')

optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(type='AdamW', lr=base_lr, weight_decay=0.01))

param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.01,
        end_factor=0.01 + 0.99 * (warmup_iters - 1) / warmup_iters,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='AbsoluteCosineAnnealingLR',
        eta_min=base_lr * 0.1,
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        T_max=max_iters)
]
auto_scale_lr = dict(enable=False, base_batch_size=128)
