# Demo-scale loss comparison: pair-wise losses + video-level FastAP
# (histogram-binned AP, 10 bins) in place of QuadLinear-AP, no frame level;
# compare with ./hapvr_demo_video-ap.py (as ../hapvr/*_fast-ap.py on the
# demo data and backbone).
_base_ = ['./hapvr_demo.py']
model = dict(
    losses=dict(
        loss_video_ap=dict(
            _delete_=True, type='FastAPLoss', num_bins=10, loss_weight=4.0),
        loss_frame_ap=None))
