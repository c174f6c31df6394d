# Demo-scale loss comparison: the Smooth-AP sigmoid (temperature 0.01) in
# place of the quad-linear surrogate at both levels (as
# ../hapvr/*_sigmoid-ap.py on the demo data and backbone).
_base_ = ['./hapvr_demo.py']
model = dict(
    losses=dict(
        loss_video_ap=dict(surrogate='sigmoid', temperature=0.01),
        loss_frame_ap=dict(surrogate='sigmoid', temperature=0.01)))
