"""Report the unreadable training videos at the end of training."""
import logging

from mmaction.registry import HOOKS
from mmengine.dist import barrier, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log

from ...datasets.ssl_video_dataset import load_skipped

__all__ = ['SkippedVideosHook']


@HOOKS.register_module()
class SkippedVideosHook(Hook):
    """Log how many training videos were skipped, and which.

    ``SSLVideoDataset`` replaces a corrupt, empty, unreadable or too short
    video by another sample and appends it to ``skipped_videos.txt`` in its
    ``skip_log_dir`` (from every rank and dataloader worker). After training
    this hook reads that file and logs the total and the first few paths, so
    that a run over a folder with bad files finishes normally and says what
    it skipped. Datasets without ``skip_log_dir`` are ignored.

    Args:
        show (int): how many paths to list. Defaults to 10.
    """

    priority = 'VERY_LOW'

    def __init__(self, show: int = 10) -> None:
        self.show = show
        self.num_skipped = 0

    def after_train(self, runner) -> None:
        """Count the skipped videos recorded during training."""
        loader = runner.train_dataloader
        dataset = getattr(loader, 'dataset', None)
        folder = getattr(dataset, 'skip_log_dir', None)
        barrier()
        if folder is None or not is_main_process():
            return
        skipped = load_skipped(folder)
        self.num_skipped = len(skipped)
        if not skipped:
            print_log('training data: no video was skipped', logger='current')
            return
        lines = [
            f'  {path}: {reason}'
            for path, reason in list(skipped.items())[:self.show]
        ]
        more = len(skipped) - len(lines)
        print_log(
            f'training data: {len(skipped)} unreadable video(s) were '
            f'skipped and replaced by other samples (list in '
            f'{folder}/skipped_videos.txt):\n' + '\n'.join(lines) +
            (f'\n  ... and {more} more' if more > 0 else ''),
            logger='current',
            level=logging.WARNING)
