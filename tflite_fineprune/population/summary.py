"""What a population's rows say: per recipe the mean, spread, worst decile, who gained or lost, and sparsity.

`summarize` and `format_summary` give the table the demos print; rows with an
`error` count as failed and stay out of the means.
"""

import io

import numpy as np

from ..safe_io import atomic_write


def _numbers(part, key):
    return np.array([float(r[key]) for r in part], np.float64)


def summarize(rows):
    """Per recipe (in order of first appearance): a dict of means, std, worst decile, helped/hurt, sparsity.

    `dense_others` / `others` (accuracy on other users' data) are None when the rows do not carry them.
    """
    out = []
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        every = [r for r in rows if r["recipe"] == recipe]
        part = [r for r in every if not r.get("error")]
        entry = {"recipe": recipe, "users": len(part), "failed": len(every) - len(part)}
        if not part:
            out.append(entry)
            continue
        dense, acc = _numbers(part, "dense_accuracy"), _numbers(part, "accuracy")
        worst = max(1, int(round(0.1 * len(part))))
        has_others = all(r.get("others") not in (None, "") for r in part)
        entry.update({
            "dense_mean": dense.mean(), "mean": acc.mean(), "std": acc.std(),
            "dense_worst_decile": np.sort(dense)[:worst].mean(), "worst_decile": np.sort(acc)[:worst].mean(),
            "helped": int(np.sum(acc > dense)), "hurt": int(np.sum(acc < dense)),
            "dense_others": _numbers(part, "dense_others").mean() if has_others else None,
            "others": _numbers(part, "others").mean() if has_others else None,
            "unit_sparsity": _numbers(part, "unit_sparsity").mean(),
            "weight_sparsity": _numbers(part, "weight_sparsity").mean(),
            "mac_sparsity": _numbers(part, "mac_sparsity").mean(),
        })
        out.append(entry)
    return out


def format_summary(summary):
    """The demos' table: one line per recipe (`summarize`'s output); a `failed` column when any user failed."""
    width = max([28] + [len(s["recipe"]) for s in summary])
    failed = any(s.get("failed") for s in summary)
    header = (f"{'recipe':<{width}} {'users':>5} {'dense':>6} {'pers.':>6} {'std':>5} {'worst10%':>14} "
              f"{'+/-':>7} {'others':>13} {'units':>6} {'weights':>7} {'MACs':>6}" + (f" {'failed':>6}" if failed
                                                                                      else ""))
    lines = [header, "-" * len(header)]
    for s in summary:
        tail = f" {s.get('failed', 0):>6}" if failed else ""
        if "mean" not in s:
            lines.append(f"{s['recipe']:<{width}} {0:>5} {'every user failed':>56}" + tail)
            continue
        others = (f"{s['dense_others']:>5.3f}→{s['others']:<6.3f}" if s.get("others") is not None
                  else f"{'—':>5} {'':<6}")
        lines.append(
            f"{s['recipe']:<{width}} {s['users']:>5} {s['dense_mean']:>6.3f} {s['mean']:>6.3f} {s['std']:>5.3f} "
            f"{s['dense_worst_decile']:>6.3f}→{s['worst_decile']:<6.3f} {s['helped']:>3}/{s['hurt']:<3} "
            f"{others} {s['unit_sparsity']:>6.1%} {s['weight_sparsity']:>7.1%} {s['mac_sparsity']:>6.1%}" + tail)
    return "\n".join(lines)


def plot_gains(rows, path, title):
    """Each user's gain (personalized − dense accuracy), sorted, one line per recipe; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        part = [r for r in rows if r["recipe"] == recipe and not r.get("error")]
        if not part:
            continue
        gains = np.sort(_numbers(part, "accuracy") - _numbers(part, "dense_accuracy"))
        ax.plot(np.linspace(0, 100, len(gains)), gains, label=f"{recipe} ({len(gains)} users)", linewidth=1.2)
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xlabel("users, sorted by gain (%)")
    ax.set_ylabel("accuracy gain over the dense model")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return True
