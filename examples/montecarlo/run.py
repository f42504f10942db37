"""Run the estimate on the cluster `shipit watch` started (or any DASK_SCHEDULER_ADDRESS).

shipit watch examples/montecarlo          # prints the scheduler address
DASK_SCHEDULER_ADDRESS=tcp://... python examples/montecarlo/run.py
"""

from distributed import Client
from montecarlo.estimate import pi
from montecarlo.sampling import SAMPLES_PER_TASK

if __name__ == "__main__":
    with Client() as client:
        print(f"pi ~ {pi(client):.5f} ({SAMPLES_PER_TASK:,} samples per task)")
