"""The README's demo table as the command line quotes it: the measured numbers, in one place.

Each row is copied verbatim from a table of the README ("What it does for each
kind of user"), which `tflite-fineprune demo` printed; a test checks that the
README still holds every row, and that the generated block of
docs/newcomer.md is what `python -m tflite_fineprune.readme_numbers` prints now.
The CLI's warnings and `personalize --help` format their numbers from here.
"""

import dataclasses
import textwrap

README_SECTION = '"What it does for each kind of user"'

# kind → (what was measured, the demo command, the README rows it quotes: recipe, then the numbers as printed)
DEMO_ROWS = {
    "speech": ("MLPerf Tiny DS-CNN, 53 speakers", "tflite-fineprune demo", (
        ("auto (default)", "53  0.910  0.927 0.066  0.711→0.777   16/8   0.913→0.894    0.0%    0.0%   0.0%"),
        ("prune 2% units", "53  0.910  0.829 0.131  0.711→0.546    6/40  0.913→0.844    1.5%    2.7%   2.9%"),
        ("prune 5% units", "53  0.910  0.666 0.137  0.711→0.407    1/50  0.913→0.670    4.6%    7.9%   8.5%"),
        ("drop unseen classes", "53  0.910  0.827 0.124  0.711→0.601    1/24  0.913→0.839    0.3%    0.5%   0.0%"),
    )),
    "vision": ("MLPerf Tiny ResNet-8, 30 CIFAR-10 users who meet 2, 3 or 5 classes",
               "tflite-fineprune demo --vision", (
        ("auto (default)", "30  0.778  0.884 0.077  0.659→0.743   30/0   0.768→0.321    5.1%    0.5%   0.0%"),
        ("classes <10%", "30  0.778  0.891 0.068  0.659→0.764   30/0   0.768→0.295    5.4%    0.5%   0.0%"),
    )),
    "fashion": ("784-1024-1024 MLP, 30 Fashion-MNIST class-subset users", "tflite-fineprune demo --fashion", (
        ("auto (default)", "30  0.893  0.968 0.043  0.785→0.866   30/0   0.901→0.331   44.3%   61.9%  62.0%"),
        ("prune 50% + classes <10%",
         "30  0.893  0.969 0.043  0.785→0.866   30/0   0.901→0.330   50.1%   64.2%  64.3%"),
    )),
}


@dataclasses.dataclass(frozen=True)
class Row:
    """One recipe's row: mean accuracy before (`dense`) and after (`personalized`), users helped and hurt."""

    recipe: str
    users: int
    dense: str
    personalized: str
    helped: int
    hurt: int

    @property
    def change(self):
        return f"{self.dense} → {self.personalized}"


def row(kind, recipe):
    """The README row of `recipe` for `kind` ("speech", "vision" or "fashion")."""
    for name, numbers in DEMO_ROWS[kind][2]:
        if name == recipe:
            users, dense, personalized, _, _, helped_hurt = numbers.split()[:6]
            helped, hurt = helped_hurt.split("/")
            return Row(recipe, int(users), dense, personalized, int(helped), int(hurt))
    raise KeyError(f"no README row {recipe!r} for {kind}")


def newcomer_section():
    """The "safe settings" bullets of docs/newcomer.md, from the rows above."""
    auto = {kind: row(kind, "auto (default)") for kind in DEMO_ROWS}
    prune2, prune5 = row("speech", "prune 2% units"), row("speech", "prune 5% units")
    unseen, classes = row("speech", "drop unseen classes"), row("vision", "classes <10%")
    mlp = row("fashion", "prune 50% + classes <10%")
    bullets = [
        f"* **Every kind of user: the automatic call** (no `--sparsity`, no `--min-class-fraction`): speakers "
        f"{auto['speech'].change} ({auto['speech'].helped} helped, {auto['speech'].hurt} hurt), CIFAR-10 "
        f"class-subset users {auto['vision'].change} ({auto['vision'].helped}/{auto['vision'].hurt}), Fashion-MNIST "
        f"MLP users {auto['fashion'].change} ({auto['fashion'].helped}/{auto['fashion'].hurt}).",
        f"* **Speech (MLPerf Tiny DS-CNN, {prune2.users} speakers)**: every expert pruning setting lowered mean "
        f"accuracy: 2 % of units {prune2.change} ({prune2.hurt} speakers hurt), 5 % {prune5.change}, dropping "
        f"only the classes never predicted {unseen.change} ({unseen.hurt} hurt). `personalize` warns on a speech "
        "model (one exported with a sample rate) when `--sparsity` ≥ 0.02 or `--min-class-fraction` > 0.",
        f"* **Users who meet only a few classes (CIFAR-10, ResNet-8)**: `--min-class-fraction 0.1` (on a model "
        f"whose classes are prunable) gave {classes.change}, {classes.helped} of {classes.users} users helped, "
        f"{classes.hurt} hurt — about what the automatic call gives.",
        f"* **Over-parameterized models (the Fashion-MNIST 784-1024-1024 MLP)**: `--sparsity 0.5 "
        f"--min-class-fraction 0.1` gave {mlp.change} ({mlp.helped}/{mlp.hurt}).",
    ]
    return "\n".join(textwrap.fill(b, 110, subsequent_indent="  ", break_on_hyphens=False) for b in bullets)


if __name__ == "__main__":
    print(newcomer_section())
