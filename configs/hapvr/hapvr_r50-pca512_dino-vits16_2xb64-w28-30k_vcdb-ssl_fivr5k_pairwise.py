# Ablation: pair-wise losses only (the S2VS baseline):
# L = L_nce + 3 (L_hn + L_self) + L_reg. No teacher is built.
_base_ = ['../hapvr_fivr.py']
model = dict(losses=dict(loss_video_ap=None, loss_frame_ap=None))
