"""`custodian` with the Huawei Cloud provider registered: `python -m tests.contract.sdk.custodian_huawei run ...`.

Cloud Custodian 0.9.53 loads only the providers it names itself; c7n-huaweicloud registers its
provider when `c7n_huaweicloud.entry.initialize_huaweicloud()` is called, which this does before
handing the command line to Custodian's own `main`.
"""

from __future__ import annotations

from c7n.cli import main
from c7n_huaweicloud.entry import initialize_huaweicloud

if __name__ == "__main__":
    initialize_huaweicloud()
    main()
