# Comparison with an earlier AP loss: pair-wise losses + video-level FastAP
# (histogram AP, 10 bins) in place of QuadLinear-AP, with the weight of L_AP;
# no frame level (no teacher needed).
_base_ = ['../hapvr_fivr.py']
model = dict(
    losses=dict(
        loss_video_ap=dict(
            _delete_=True, type='FastAPLoss', num_bins=10, loss_weight=4.0),
        loss_frame_ap=None))
