"""Check a config's device placement on a CPU-only machine.

Runs training iterations of a training config and/or one evaluation of a
test config with every tensor on the stand-in accelerator of
``hapvr_mm.utils.device_standin``: real CPU arithmetic, but an operation
that mixes host and device tensors (what fails or silently copies on a
GPU) stops the run with the operation and the line at fault.

Examples:
    python tools/check_devices.py configs/hapvr_fivr.py \\
        --cfg-options train_dataloader.dataset.data_root=data/demo/train
    python tools/check_devices.py configs/demo/hapvr_demo.py --test \\
        --watch mypkg            # also judge host tensors made by mypkg

Exit status 0 when the run is clean, 1 on a placement error (message on
stderr), 2 on a usage error.
"""
import argparse
import importlib
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import DictAction

import hapvr_mm
from hapvr_mm.apis import USER_ERRORS, check_device_placement, load_config
from hapvr_mm.utils import DevicePlacementError, DeviceStandIn


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Check device placement on a stand-in accelerator')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--iters', type=int, default=1, help='training iterations (default 1)')
    parser.add_argument(
        '--test',
        action='store_true',
        help='also run one evaluation (test_dataloader)')
    parser.add_argument(
        '--test-only', action='store_true', help='only the evaluation')
    parser.add_argument(
        '--watch',
        nargs='*',
        default=[],
        help='packages whose host tensors are judged too')
    parser.add_argument('--work-dir', help='logs of the check')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)
    args.launcher = 'none'
    if args.iters < 1:
        parser.error(f'--iters must be >= 1, got {args.iters}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args)
    except USER_ERRORS as err:
        print(f'error: {err}', file=sys.stderr)
        return 2
    watched = [osp.dirname(hapvr_mm.__file__)]
    for name in args.watch:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            print(
                f'check_devices: cannot import --watch {name}: {err}',
                file=sys.stderr)
            return 2
        watched.append(osp.dirname(osp.abspath(module.__file__)))
    train = None if args.test_only else cfg
    test = cfg if (args.test or args.test_only) else None
    try:
        report = check_device_placement(
            train,
            test,
            iters=args.iters,
            standin=DeviceStandIn(watched=watched))
    except DevicePlacementError as err:
        print(f'check_devices: DEVICE PLACEMENT ERROR: {err}', file=sys.stderr)
        return 1
    print('device placement: clean')
    for i, losses in enumerate(report.losses):
        print(f'  iteration {i + 1}: ' + ', '.join(f'{k}={v:.4f}'
                                                   for k, v in losses.items()))
    if report.autocast_dtypes:
        print(
            f'  autocast requested: {sorted(set(map(str, report.autocast_dtypes)))} '  # noqa: E501
            '(not applied on the stand-in; see benchmarks/fp16_audit.py)')
    if report.loss_scale is not None:
        print(f'  loss scale after training: {report.loss_scale:g}')
    if report.teacher_dtype is not None:
        print(f'  teacher dtype on the device: {report.teacher_dtype}')
    if report.off_device:
        print('  NOT on the device: ' + ', '.join(report.off_device))
    reads = sum(report.host_reads.values())
    print(f'  device-to-host reads inside the steps: {reads}')
    for where, count in sorted(report.host_reads.items()):
        print(f'    {count} x {where}')
    if report.metrics:
        print('  evaluation: ' + ', '.join(f'{k}={v}'
                                           for k, v in report.metrics.items()))
    return 0 if not report.off_device else 1


if __name__ == '__main__':
    sys.exit(main())
