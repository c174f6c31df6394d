# Comparison with an earlier AP surrogate: the Smooth-AP sigmoid in place of
# the quad-linear surrogate at both levels (temperature 0.01).
_base_ = ['../hapvr_fivr.py']
model = dict(
    losses=dict(
        loss_video_ap=dict(surrogate='sigmoid', temperature=0.01),
        loss_frame_ap=dict(surrogate='sigmoid', temperature=0.01)))
