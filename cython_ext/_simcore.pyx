# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""The simulator's event queue and event loop in C (minichain.sim._simcore).

The same queue as the pure-Python one in minichain/sim/events.py -- the same events in
the same order (earliest time first, ties in the order they were scheduled), popped as
the same tuples -- with the heap kept as an array of C structs: comparing two events is
comparing two doubles (and two counters on a tie), not two tuples of Python objects, and
scheduling an event allocates no tuple. A large gossip run pushes and pops millions.

``Deliveries.push_lognormal_fifo`` is the network's hottest loop (a relay to many peers
on a plain FIFO log-normal network) with the latency drawn in C: the same calls to the
generator's ``random()`` in the same order and the same arithmetic as ``random.gauss``,
so the same numbers. minichain/sim/network.py checks that at import against its Python
twin (itself checked against the library) and uses the Python path if they ever differ.

``run_events`` is ``Simulation._run_events`` (minichain/sim/simulator.py) statement for
statement, reading events straight from the array.

Built by setup.py with the package; optional: without a C compiler minichain.sim.events
uses its pure-Python queue and the simulator its Python loop, and nothing else changes
(tests/test_sim_core.py runs whole scenarios on both and requires the same results).
"""

from cpython.ref cimport PyObject, Py_INCREF, Py_XDECREF, Py_CLEAR
from cpython.mem cimport PyMem_Malloc, PyMem_Realloc, PyMem_Free
from libc.math cimport log, exp, sqrt, cos, sin, M_PI

# The event kinds (minichain.sim.events: DELIVERY, TIMER, CALL).
cdef enum:
    DELIVERY = 0
    TIMER = 1
    CALL = 2

cdef double TWOPI = 2.0 * M_PI          # random.py's TWOPI

# The garbage collector's view of the queue (see the end of this file).
cdef extern from "Python.h":
    ctypedef int (*visitproc)(PyObject*, void*)
    ctypedef int (*traverseproc)(PyObject*, visitproc, void*)
    ctypedef int (*inquiry)(PyObject*)
    ctypedef struct PyTypeObject:
        traverseproc tp_traverse
        inquiry tp_clear


cdef struct Event:
    double t                 # the time, for ordering
    unsigned long long seq   # the tie-break: scheduling order
    long node
    int kind
    PyObject* time           # the time as given (popped as it was pushed: an int stays an int)
    PyObject* a
    PyObject* b


cdef inline bint _before(Event* x, Event* y) noexcept nogil:
    return x.t < y.t or (x.t == y.t and x.seq < y.seq)


cdef class EventQueue:
    """Events by (time, sequence number): ``minichain.sim.events.EventQueue`` in C."""

    cdef Event* _heap
    cdef Py_ssize_t _n
    cdef Py_ssize_t _cap
    cdef unsigned long long _seq
    cdef readonly object deliveries

    def __cinit__(self):
        self._cap = 1024
        self._heap = <Event*>PyMem_Malloc(self._cap * sizeof(Event))
        if self._heap == NULL:
            raise MemoryError()
        self._n = 0
        self._seq = 0

    def __init__(self):
        #: The narrow view handed to the network.
        self.deliveries = Deliveries(self)

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._heap != NULL:
            for i in range(self._n):
                Py_XDECREF(self._heap[i].time)
                Py_XDECREF(self._heap[i].a)
                Py_XDECREF(self._heap[i].b)
            PyMem_Free(self._heap)

    cdef unsigned long long _push(self, object time, int kind, long node, object a, object b) except 0:
        cdef Event* heap
        cdef Py_ssize_t i, parent
        cdef Event ev
        cdef double t = time                    # TypeError for a time that is not a number
        if self._n == self._cap:
            heap = <Event*>PyMem_Realloc(self._heap, 2 * self._cap * sizeof(Event))
            if heap == NULL:
                raise MemoryError()
            self._heap = heap
            self._cap *= 2
        self._seq += 1
        ev.t = t
        ev.seq = self._seq
        ev.kind = kind
        ev.node = node
        Py_INCREF(time)
        Py_INCREF(a)
        Py_INCREF(b)
        ev.time = <PyObject*>time
        ev.a = <PyObject*>a
        ev.b = <PyObject*>b
        heap = self._heap
        i = self._n
        self._n += 1
        while i > 0:                              # sift up
            parent = (i - 1) >> 1
            if _before(&ev, &heap[parent]):
                heap[i] = heap[parent]
                i = parent
            else:
                break
        heap[i] = ev
        return ev.seq

    cdef Event _take(self):
        """Remove the earliest event (the queue must not be empty) and hand its three
        references to the caller."""
        cdef Event top, last
        cdef Event* heap = self._heap
        cdef Py_ssize_t i, child, n
        top = heap[0]
        self._n -= 1
        n = self._n
        if n > 0:
            last = heap[n]
            i = 0
            while True:                            # sift down
                child = 2 * i + 1
                if child >= n:
                    break
                if child + 1 < n and _before(&heap[child + 1], &heap[child]):
                    child += 1
                if _before(&heap[child], &last):
                    heap[i] = heap[child]
                    i = child
                else:
                    break
            heap[i] = last
        return top

    def pop(self):
        """Remove and return the earliest event; IndexError if the queue is empty."""
        if self._n == 0:
            raise IndexError("pop from an empty event queue")
        cdef Event top = self._take()
        result = (<object>top.time, top.seq, top.kind, top.node, <object>top.a, <object>top.b)
        Py_XDECREF(top.time)
        Py_XDECREF(top.a)
        Py_XDECREF(top.b)
        return result

    def push_delivery(self, object t, long dst, object src, object msg):
        self._push(t, DELIVERY, dst, src, msg)

    def push_timer(self, object t, long node, object name):
        """Schedule ``name`` on ``node`` at ``t``; returns the timer's token (unique)."""
        return self._push(t, TIMER, node, name, self._seq + 1)

    def push_call(self, object t, object fn, object args):
        self._push(t, CALL, -1, fn, args)

    def peek_time(self):
        """The time of the earliest event, or None if the queue is empty."""
        return <object>self._heap[0].time if self._n else None

    def __len__(self):
        return self._n

    def __bool__(self):
        return self._n > 0


cdef class Deliveries:
    """The network's handle on the queue: schedule arrivals, nothing else."""

    cdef EventQueue _queue

    def __init__(self, EventQueue queue):
        self._queue = queue

    def push(self, object t, long dst, object src, object msg):
        """``msg`` from ``src`` arrives at ``dst`` at time ``t``."""
        self._queue._push(t, DELIVERY, dst, src, msg)

    def push_many(self, times, dsts, object src, object msg):
        """``push(t, dst, src, msg)`` for each ``t, dst`` in ``zip(times, dsts)``, in order."""
        cdef EventQueue queue = self._queue
        for t, dst in zip(times, dsts):
            queue._push(t, DELIVERY, dst, src, msg)

    def push_lognormal_fifo(self, rng, double now, dsts, latency, dict last_arrival, object src, object msg):
        """``msg`` sent at ``now`` from ``src`` to each of ``dsts`` on a plain FIFO
        log-normal network: network.py's ``_lognormal_fifo_times`` and ``push_many``
        in one C loop (the same draws, the same arrivals, the same order)."""
        cdef EventQueue queue = self._queue
        cdef double base = latency.base, median = latency.median, sigma = latency.sigma
        cdef double x2pi, g2rad, t, z = 0.0
        cdef bint have_z
        rand = rng.random
        saved = rng.gauss_next
        have_z = saved is not None
        if have_z:
            z = saved
        for dst in dsts:
            # random.gauss(0, 1), as random.py computes it (Box-Muller, two values per pair
            # of draws, the second kept in gauss_next), then LogNormal.sample's formula.
            if not have_z:
                x2pi = <double>rand() * TWOPI
                g2rad = sqrt(-2.0 * log(1.0 - <double>rand()))
                t = now + (base + median * exp(sigma * (cos(x2pi) * g2rad)))
                z = sin(x2pi) * g2rad
                have_z = True
            else:
                t = now + (base + median * exp(sigma * z))
                have_z = False
            last = last_arrival.get(dst, 0.0)
            if t < <double>last:
                arrival = last
            else:
                arrival = t
            last_arrival[dst] = arrival
            queue._push(arrival, DELIVERY, dst, src, msg)
        rng.gauss_next = z if have_z else None


def run_events(object sim, EventQueue queue, object until, object max_events, object stop_when):
    """``Simulation._run_events`` in C, statement for statement (see minichain/sim/simulator.py,
    whose docstrings and comments explain each step): pop events in order until the queue
    is empty, the next event is after ``until``, ``max_events`` have run, ``sim.stop()`` was
    called or ``stop_when(sim)`` is true after an event."""
    cdef Event ev
    cdef bint has_until = until is not None
    cdef bint has_budget = max_events is not None
    cdef double until_t = until if has_until else 0.0
    cdef long long budget = min(max_events, 1 << 62) if has_budget else 0   # (more than a run can hold)
    cdef long long events = sim.events
    cdef long long ndelivered
    cdef long node, src
    cdef int kind
    cdef list engines = sim.engines
    cdef list crashed = sim.crashed
    cdef list timers = sim._timers
    counters = sim.net.counters
    cdef dict delivered = counters.delivered_by_cls
    apply = sim._apply
    ndelivered = counters.delivered
    try:
        while queue._n > 0:
            if has_until and queue._heap[0].t > until_t:
                break
            if has_budget:
                if budget <= 0:
                    break
                budget -= 1
            ev = queue._take()
            t = <object>ev.time
            a = <object>ev.a
            b = <object>ev.b
            Py_XDECREF(ev.time)                    # the queue's references, now ours
            Py_XDECREF(ev.a)
            Py_XDECREF(ev.b)
            node = ev.node
            kind = ev.kind
            sim.now = t
            events += 1
            if kind == DELIVERY:
                src = a
                if src != node and src >= 0:          # network traffic (the bulk of a run)
                    if crashed[node]:
                        counters.crashed += 1
                    else:
                        ndelivered += 1
                        cls = type(b)
                        delivered[cls] = delivered.get(cls, 0) + 1
                        actions = engines[node].on_message(a, b)
                        if actions:
                            apply(node, actions)
                elif not crashed[node]:               # a copy to self, or client input
                    apply(node, engines[node].on_message(a, b))
            elif kind == TIMER:
                pending = timers[node]
                if pending.get(a) != b:
                    continue                          # cancelled, replaced, or node crashed
                del pending[a]
                sim.timers_fired += 1
                actions = engines[node].on_timer(a)
                if actions:
                    apply(node, actions)
            else:                                     # CALL
                sim.events = events
                counters.delivered = ndelivered
                a(*b)
                ndelivered = counters.delivered
            if sim._stopped:
                break
            if stop_when is not None:
                sim.events = events
                counters.delivered = ndelivered
                if stop_when(sim):
                    break
    finally:
        sim.events = events
        counters.delivered = ndelivered



# -- the garbage collector's view ---------------------------------------------------------
# Queued events hold references (messages, timer names, a scheduled call's function and
# arguments) that Cython's generated tp_traverse cannot see: they live in the C array.
# A scheduled call to a bound method of the simulation (``sim.at(t, sim.net.heal)``) then
# makes a cycle the collector would never break, and a finished Simulation would leak.
# These two slots, installed over Cython's, show the collector every queued reference and
# let it clear them, as it does for the Python queue's list of tuples.

cdef traverseproc _cython_traverse = (<PyTypeObject*>EventQueue).tp_traverse
cdef inquiry _cython_clear = (<PyTypeObject*>EventQueue).tp_clear


cdef int _queue_traverse(PyObject* o, visitproc visit, void* arg) noexcept:
    cdef EventQueue queue = <EventQueue>o
    cdef Event* heap = queue._heap
    cdef Py_ssize_t i
    cdef int r
    for i in range(queue._n):
        r = visit(heap[i].time, arg)
        if r:
            return r
        r = visit(heap[i].a, arg)
        if r:
            return r
        r = visit(heap[i].b, arg)
        if r:
            return r
    return _cython_traverse(o, visit, arg)


cdef int _queue_clear(PyObject* o) noexcept:
    cdef EventQueue queue = <EventQueue>o
    cdef Event* heap = queue._heap
    cdef Py_ssize_t i, n = queue._n
    queue._n = 0                              # empty first: clearing may run arbitrary code
    for i in range(n):
        Py_CLEAR(heap[i].time)
        Py_CLEAR(heap[i].a)
        Py_CLEAR(heap[i].b)
    return _cython_clear(o)


(<PyTypeObject*>EventQueue).tp_traverse = _queue_traverse
(<PyTypeObject*>EventQueue).tp_clear = _queue_clear
