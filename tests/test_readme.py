"""Every ```python block of README.md runs as written, each in a fresh interpreter in an empty
folder (as a user pastes it into a file), and shows the result it promises."""

import pathlib
import re

import pytest
from conftest import ROOT, run_python

README = pathlib.Path(ROOT) / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)

# What each example must print, in README order: the figure a reader is told to expect.
EXPECTED = [
    r"billiards: distance of the target ball .* goal (reached|MISSED)\nspeed",  # a scene from Python
    r"max relative error .*: PASS",                                    # a rollout, its gradient, its check
    r"stiffness 150\.00 N/m \(true 150\), damping 0\.200 \(true 0\.2\)",  # fitting a recorded trajectory
    r"third apex 0\.(199[5-9]|200[0-5]) m \(goal 0\.20 m\)",            # the bounce fit
    r"the disc stops at 0\.(799|800)\d m \(goal 0\.8 m\)",               # your own law, fused
    r"'D': 0\.3429, 'alpha': 1\.3588, 'r0': 2\.866",                    # MD gradient and force matching
]


def test_every_block_has_an_expected_result():
    assert len(BLOCKS) == len(EXPECTED), "add the new README example's expected output to EXPECTED"


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs_as_written(index, tmp_path):
    script = tmp_path / f"example{index}.py"
    script.write_text(BLOCKS[index])
    out = run_python(f"import runpy, os; os.chdir({str(tmp_path)!r}); runpy.run_path({str(script)!r}, "
                     "run_name='__main__')")
    assert out.returncode == 0, f"README example {index} failed:\n{BLOCKS[index]}\n{out.stderr[-3000:]}"
    assert re.search(EXPECTED[index], out.stdout), out.stdout[-2000:]
