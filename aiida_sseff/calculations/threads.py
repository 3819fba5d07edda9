"""Threads of a job from its scheduler resources, so that jobs that share a machine do not oversubscribe it.

OpenMP, MKL and OpenBLAS (and torch, which follows ``OMP_NUM_THREADS``) start one thread per core of the machine in
every process unless told otherwise. Three MD jobs side by side on two cores (the direct scheduler, or several
tasks in one allocation) then run 3 × 2 threads on 2 cores and are slower together than one after another. A job
gets the cores its resources give it: ``num_cores_per_mpiproc``, else ``num_cores_per_machine`` divided among the
MPI processes of a machine, else ``num_cpus`` (HyperQueue's resources, aiida-hyperqueue: the CPUs HyperQueue gives
the task, to the job's one process), else one thread.

The user keeps the last word: a variable set in ``metadata.options.environment_variables`` is never overwritten.
"""

from __future__ import annotations

__all__ = ['THREAD_VARIABLES', 'thread_prepend_text', 'threads_per_process']

#: the variables every threaded library of the engine and of neppo reads (torch follows OMP_NUM_THREADS)
THREAD_VARIABLES = ('OMP_NUM_THREADS', 'MKL_NUM_THREADS', 'OPENBLAS_NUM_THREADS')


def _positive(resources: dict, key: str) -> int | None:
    value = resources.get(key)
    return int(value) if value is not None and int(value) >= 1 else None


def threads_per_process(resources: dict) -> int:
    """Threads for each process of a job with these scheduler ``resources`` (the ``metadata.options.resources``
    dict; aiida-core's ``NodeNumberJobResource`` keys): ``num_cores_per_mpiproc``; else ``num_cores_per_machine`` //
    the processes per machine (``num_mpiprocs_per_machine``, or ``tot_num_mpiprocs // num_machines``), at least 1;
    else ``num_cpus`` (aiida-hyperqueue's ``HyperQueueJobResource``: the task's CPUs; the CalcJobs that set threads
    run one process); else 1 (no cores requested: the job owns one core, as a direct-scheduler job shares the machine
    with others)."""
    per_process = _positive(resources, 'num_cores_per_mpiproc')
    if per_process:
        return per_process
    per_machine = _positive(resources, 'num_cores_per_machine')
    if per_machine:
        processes = _positive(resources, 'num_mpiprocs_per_machine')
        if processes is None:
            total, machines = _positive(resources, 'tot_num_mpiprocs'), _positive(resources, 'num_machines')
            processes = total // machines if total and machines else 1
        return max(1, per_machine // max(processes, 1))
    return _positive(resources, 'num_cpus') or 1


def thread_prepend_text(resources: dict, environment_variables: dict | None = None) -> str:
    """The submit-script lines (``CalcInfo.prepend_text``) that set :data:`THREAD_VARIABLES` to
    :func:`threads_per_process`; a variable the user set in ``environment_variables`` is left out (the scheduler
    exports those before the prepend text, so a line here would overwrite the user's value)."""
    threads = threads_per_process(resources)
    given = set(environment_variables or {})
    lines = [f'export {name}={threads}' for name in THREAD_VARIABLES if name not in given]
    return '\n'.join(['# threads from the job resources (aiida_sseff.calculations.threads)', *lines]) if lines else ''
