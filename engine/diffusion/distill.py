"""Progressive distillation (Salimans & Ho 2022) for an x0-predicting model on the cosine schedule.

One round halves the sampling steps: a student initialised from the teacher
learns to make, in one DDIM step from t to t - 2/N, the move the teacher makes
in two steps (t -> t - 1/N -> t - 2/N). With x0 prediction the student's
target is the x0 that a single DDIM step would need to land on the teacher's
point: x~0 = (x_t'' - (s_t''/s_t) x_t) / (a_t'' - (s_t''/s_t) a_t).
"""
from __future__ import annotations

import torch

from .sampler import alpha_sigma, ddim_step


def distill_targets(teacher, x_t: torch.Tensor, t: torch.Tensor, n_teacher: int, cond: tuple) -> torch.Tensor:
    """Student x0 targets for a batch whose times t lie on the student's grid (multiples of 2/N)."""
    out = torch.empty_like(x_t)
    with torch.no_grad():
        for tv in torch.unique(t).tolist():
            idx = torch.nonzero(t == tv).flatten()
            x = x_t[idx]
            c = tuple(v[idx] for v in cond)
            t1, t2 = tv - 1.0 / n_teacher, tv - 2.0 / n_teacher
            t2 = max(t2, 0.0)
            x0a = teacher(x, torch.full((len(idx),), tv), *c).clamp(-1, 1)
            x1 = ddim_step(x, x0a, tv, t1)
            x0b = teacher(x1, torch.full((len(idx),), t1), *c).clamp(-1, 1)
            x2 = ddim_step(x1, x0b, t1, t2)
            if t2 <= 0.0:
                out[idx] = x2
                continue
            a0, s0 = alpha_sigma(tv)
            a2, s2 = alpha_sigma(t2)
            r = s2 / s0
            out[idx] = (x2 - r * x) / (a2 - r * a0)
    return out


def student_times(batch: int, n_teacher: int, generator: torch.Generator) -> torch.Tensor:
    """Times on the student's grid: 1 - 2 i / N for i in [0, N/2)."""
    i = torch.randint(0, n_teacher // 2, (batch,), generator=generator)
    return 1.0 - 2.0 * i.float() / n_teacher
