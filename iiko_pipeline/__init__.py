"""iiko-pipeline: iiko Server back offices synced into our warehouse, run by Dagster.

Arrow allocates from the system allocator (`ARROW_DEFAULT_MEMORY_POOL=system`) unless the environment says
otherwise. Its default jemalloc pool keeps the pages of freed frame chunks for reuse, so a run's resident memory
climbed to its largest chunk and stayed there: on the quick bench (30 days at `large`) the run's peak was 448 MB
with jemalloc and 392 MB with the system allocator, at the same speed. Set before anything allocates, here,
because every process of ours (CLI, API, forkserver, run, bench worker) imports this package first.
"""

import os

os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
