"""Small HAP-VR models and features shared by the search tests."""
import torch
import torch.nn.functional as F

D = 8


def make_model(dims: int = D, seed: int = 0):
    """A HAPVR without backbone (features in), random head, eval mode."""
    from mmaction.registry import MODELS
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(type='HAPVR', head=dict(type='SimilarityHead', dims=dims)))
    model.init_weights()
    return model.eval()


def random_videos(n: int,
                  seed: int = 0,
                  lengths=(4, 9),
                  regions: int = 2,
                  dims: int = D):
    """``n`` raw ``[T, R, D]`` unit region features of random lengths."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        t = int(
            torch.randint(lengths[0], lengths[1] + 1, (1, ), generator=gen))
        out.append(
            F.normalize(torch.randn(t, regions, dims, generator=gen), dim=-1))
    return out
