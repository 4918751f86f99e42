"""``msrun`` for a node other than the master, run on the master's own machine.

msrun starts the scheduler on every node whose addresses include ``--master_addr``. On two real machines
that is node 0 alone; on one machine it is every launch, and the second scheduler fails on the taken
port. tests/test_data_parallel.py launches node 1 through this file, which only tells msrun that this
node is not the master (as on a second machine); everything else is msrun's own code.
"""

import sys

from mindspore.parallel.cluster.process_entity import _api

_api._is_local_ip = lambda address: False  # noqa: SLF001 - the one difference from a second machine

if __name__ == "__main__":
    from mindspore.parallel.cluster.run import main

    sys.exit(main())
