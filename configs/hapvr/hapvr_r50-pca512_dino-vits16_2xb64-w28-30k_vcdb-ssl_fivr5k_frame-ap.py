# Ablation: pair-wise + video-level + frame-level AP = full HAP-VR (the same
# as configs/hapvr_fivr.py, spelled out for the ablation table).
_base_ = ['../hapvr_fivr.py']
