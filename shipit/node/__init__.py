"""What runs on the scheduler and the workers.

Every module here imports only the standard library, ``dask``, ``distributed`` and its
siblings in this package (``tests/test_layout.py`` checks it), and must run on any Python
from 3.10 on: it travels to the nodes as source (``shipit.agent``), is compiled there by the
node's own Python (``boot.py``), and works whether or not shipit is installed there. The
client imports these modules too, to call them locally; they never import the client.

This package stays nearly empty: its modules load one by one on the nodes.
"""
