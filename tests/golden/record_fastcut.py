"""Record tests/golden/fastcut.pt from taesungp/contrastive-unpaired-translation (runs outside CI).

    I2I_OFFICIAL_CUT=/path/to/contrastive-unpaired-translation python tests/golden/record_fastcut.py

As record_cut.py with --CUT_mode FastCUT (lambda_NCE 10, no identity NCE, flip equivariance) and ngf 3 (at
ngf 2, and for CUT at ngf 3, the official netF gradients of these cases are NaN: the recorders refuse
non-finite gradients). The numpy seed before the step is chosen so that the official flip coin comes up
"flip"; the fixture records it.
"""

from record_cut import record

if __name__ == "__main__":
    record("fastcut")
