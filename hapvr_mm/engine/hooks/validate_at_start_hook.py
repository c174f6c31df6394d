"""Evaluate the untrained model once before training starts."""
from mmaction.registry import HOOKS
from mmengine.hooks import Hook

__all__ = ['ValidateAtStartHook']


@HOOKS.register_module()
class ValidateAtStartHook(Hook):
    """Run the validation loop before the first training iteration.

    Gives the "before" numbers of a run (logged as step 0 in
    ``scalars.json``) so that they can be compared with the validation after
    training. It does nothing when resuming (iteration > 0) or when the
    runner has no validation loop.
    """

    priority = 'LOW'

    def before_train(self, runner) -> None:
        """Validate at iteration 0."""
        if runner.iter > 0 or runner.val_loop is None:
            return
        runner.val_loop.run()
