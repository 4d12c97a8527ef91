("""Write the notebooks in this folder from their cells (cells_<notebook>.py) """
 """(stripped: no outputs, no execution counts).

    python notebooks/build.py          # rewrite every .ipynb
    python notebooks/build.py --check  # exit 1 if a committed .ipynb differs from what this script writes

Edit the cells in cells_<notebook>.py, not in the .ipynb files, so a review reads plain Python.
Each notebook: a markdown cell saying what it shows, one parameter cell, then the work.
""")

import argparse
import pathlib
import sys

import nbformat

from cells_paper_imagenet import PAPER_IMAGENET
from cells_phone_assets import PHONE_ASSETS
from cells_quickstart import QUICKSTART
from cells_your_keywords import YOUR_KEYWORDS

HERE = pathlib.Path(__file__).resolve().parent


def notebook(cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                   "language_info": {"name": "python"}, "colab": {"provenance": []}}
    nb.cells = cells
    for i, cell in enumerate(nb.cells):
        cell.id = f"cell-{i:02d}"  # stable ids keep the diff of a regenerated notebook empty
    return nb


NOTEBOOKS = {"quickstart": QUICKSTART, "your_keywords": YOUR_KEYWORDS, "paper_imagenet": PAPER_IMAGENET,
             "phone_assets": PHONE_ASSETS}

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / f"{name}.ipynb"
        text = nbformat.writes(notebook(cells)) + "\n"
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print("out of date (run python notebooks/build.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
