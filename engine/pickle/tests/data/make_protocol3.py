"""Re-writes a fixture network pickle with pickle protocol 3, as Python 3.7 wrote the
released StyleGAN2-ADA files (GLOBAL opcode, no FRAME, BINPUT/LONG_BINPUT memo).

Needs only the Python standard library: no torch, numpy or dnnlib. Every global the file
names is replaced by a stub that records its call and, when pickled again, reproduces the same
call under the same module and name. Only the keys given on the command line are kept.

    python3 make_protocol3.py IN.pkl OUT.pkl G_ema
"""

import collections
import io
import pickle
import sys
import types


class Call:
    """The recorded result of calling a stubbed global (REDUCE / NEWOBJ + BUILD)."""

    def __init__(self, func, args):
        self.func = func
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state

    def __reduce__(self):
        if self.state is None:
            return (self.func, self.args)
        return (self.func, self.args, self.state)


_modules = {}


def stub(module, name):
    """A function object that pickle writes as GLOBAL `module name`."""
    mod = _modules.get(module)
    if mod is None:
        mod = types.ModuleType(module)
        _modules[module] = mod
        sys.modules[module] = mod
        parent, _, child = module.rpartition(".")
        if parent:
            setattr(stub_module(parent), child, mod)
    if not hasattr(mod, name):
        def f(*args):
            return Call(f, args)
        f.__module__ = module
        f.__qualname__ = name
        f.__name__ = name
        setattr(mod, name, f)
    return getattr(mod, name)


def stub_module(module):
    if module not in _modules:
        mod = types.ModuleType(module)
        _modules[module] = mod
        sys.modules[module] = mod
        parent, _, child = module.rpartition(".")
        if parent:
            setattr(stub_module(parent), child, mod)
    return _modules[module]


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (a dict subclass, pickled with NEWOBJ + SETITEMS)."""


EasyDict.__module__ = "dnnlib.util"
stub_module("dnnlib.util").EasyDict = EasyDict


class StubUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("dnnlib.util", "EasyDict"):
            return EasyDict
        return stub(module, name)


def main():
    src, dst, *keys = sys.argv[1:]
    with open(src, "rb") as f:
        data = StubUnpickler(f).load()
    kept = {k: data[k] for k in keys}
    buf = io.BytesIO()
    pickle.dump(kept, buf, protocol=3)
    with open(dst, "wb") as f:
        f.write(buf.getvalue())
    print(f"{dst}: {len(buf.getvalue())} bytes, keys {list(kept)}")


if __name__ == "__main__":
    main()
