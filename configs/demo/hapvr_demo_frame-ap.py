# Demo-scale ablation: pair-wise + video-level + frame-level QuadLinear-AP,
# i.e. full HAP-VR (the same as ./hapvr_demo.py, spelled out for the tables;
# as ../hapvr/*_frame-ap.py on the demo data and backbone).
_base_ = ['./hapvr_demo.py']
