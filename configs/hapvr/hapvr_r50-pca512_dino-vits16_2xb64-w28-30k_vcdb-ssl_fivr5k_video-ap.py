# Ablation: pair-wise losses + video-level QuadLinear-AP (no frame level).
_base_ = ['../hapvr_fivr.py']
model = dict(losses=dict(loss_frame_ap=None))
