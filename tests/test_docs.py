"""The code in the docs runs: the encoder example passes the contract checks."""

import re
from pathlib import Path

import numpy as np

from releo_bench.checks import check_encoder
from releo_bench.encoders.adapt import encode_batch
from releo_bench.tasks.mock import MockRegression

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _python_blocks(name: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / name).read_text(), flags=re.S)


def test_adding_an_encoder_example_works():
    namespace: dict = {}
    exec(compile(_python_blocks("adding-an-encoder.md")[0], "adding-an-encoder.md", "exec"), namespace)
    encoder = namespace["NdviMaxEncoder"]()
    check_encoder(encoder)
    data = MockRegression().load("test")
    emb = encode_batch(encoder, data.batch).features.numpy()
    ndvi_max = emb[:, 0]
    assert ((ndvi_max > -0.2) & (ndvi_max < 1.0)).all()
    # the mock target is the seasonal peak of green cover: NDVI max must track it
    assert np.corrcoef(ndvi_max, data.target)[0, 1] > 0.8


def test_docs_link_to_existing_files():
    root = DOCS.parent
    for md in [root / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#]+?)\)", md.read_text()):
            if target.startswith("http"):
                continue
            assert (md.parent / target).exists(), f"{md.name} links to missing {target}"
