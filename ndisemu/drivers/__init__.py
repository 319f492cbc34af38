"""The kernel's two worker drivers: how the emulated worker threads are carried.

`ndisemu.kernel` owns virtual time, the timer heap, the DPC queue and the dispatcher's step
loop; a driver only runs the baton — gives a ready thread its turn and takes the baton back when
the thread's item waits or returns. `tasks` carries each thread as a trio task (a turn is a trio
task switch), `coroutines` steps each item's coroutine from the dispatcher itself (no switch per
turn). Both run the same steps in the same order, so a run without outside input has the same
event trace with either (the kernel's docstring has the theory of operation). The drivers are
the kernel's own: they use its dispatcher internals (`Kernel._step`, `_fire_due_timers`,
`_apply_actions`, `_current`, `_ended`, `_bugcheck`, `_nursery`, ...), which no other module
touches.
"""
