# Demo-scale ablation / loss comparison: pair-wise losses only
# (L = L_nce + 3 (L_hn + L_self) + L_reg, the S2VS baseline), as
# ../hapvr/*_pairwise.py on the demo data and backbone. No teacher is built.
#
#   python tools/experiments.py ablation-demo --seeds 0 1 2
_base_ = ['./hapvr_demo.py']
model = dict(losses=dict(loss_video_ap=None, loss_frame_ap=None))
