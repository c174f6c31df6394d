# Demo-scale ablation: pair-wise losses + video-level QuadLinear-AP, no
# frame level (as ../hapvr/*_video-ap.py on the demo data and backbone).
_base_ = ['./hapvr_demo.py']
model = dict(losses=dict(loss_frame_ap=None))
