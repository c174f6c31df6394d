"""Convert a checkpoint of the authors' public HAP-VR code to hapvr_mm.

Example:
    python tools/convert_official_checkpoint.py hapvr_official.pth \
        checkpoints/hapvr_converted.pth --snippet configs/hapvr/official.py
    python tools/test.py configs/hapvr/hapvr_r50-pca512_test_fivr5k.py \
        checkpoints/hapvr_converted.pth --cfg-options ...
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from hapvr_mm.apis.convert import convert_official_checkpoint


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='output hapvr_mm checkpoint (.pth)')
    parser.add_argument(
        '--snippet', help='also write the config snippet to this file')
    args = parser.parse_args(argv)
    head_cfg, snippet = convert_official_checkpoint(args.src, args.dst)
    print(f'wrote {args.dst}\n')
    print(snippet)
    if args.snippet:
        with open(args.snippet, 'w') as f:
            f.write(snippet)
        print(f'wrote {args.snippet}')


if __name__ == '__main__':
    # user errors end as one 'error: ...' line, exit status 2
    from _cli import run_tool
    run_tool(main, extra=(FileNotFoundError, ValueError))
