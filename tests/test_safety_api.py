"""The API-surface rules: attribute and keyword allow-list, excluded families, local classes,
dunder definitions, library patching, raw memory and the validator's own limits."""

from __future__ import annotations

import time

import pytest

from jupyter_analyst.safety import RiskLevel, SafetyValidator

validator = SafetyValidator()

REFUSED = [
    # raw memory and address oracles
    ("import numpy as np\nv = np.zeros(2)\np = v.ctypes.data", "api-excluded", "raw-memory"),
    ("from numpy.lib.stride_tricks import as_strided\nas_strided", "api-excluded", "memory"),
    ("import numpy as np\nw = np.lib.stride_tricks.as_strided(np.ones(1), (9,), (0,))",
     "api-excluded", "memory"),
    ("import numpy as np\nbuf = np.ones(3)\nbuf.resize(9, refcheck=False)", "api-excluded",
     "refcheck"),
    ("import scipy\ncb = scipy.LowLevelCallable(f)", "api-excluded", "LowLevelCallable"),
    ("addr = id(df)", "builtin", "id"),
    ("rng = np.random.default_rng(1)\nrng.bit_generator.ctypes.state_address", "api-excluded",
     "ctypes"),
    ("gen = np.random.PCG64(3)\nraw = gen.cffi.state_address", "api-excluded", "memory"),
    ("gen = np.random.PCG64(3)\ncap = gen.capsule", "api-excluded", "memory"),
    ("import numpy as np\nflat = np.ones(4)\nflat.setflags(write=True)", "api-excluded",
     "setflags"),
    ("from scipy import sparse\nm = sparse.csr_matrix((vals, cols, ptrs), shape=(2, 2))\n"
     "m.indices[0] = 10 ** 9", "sparse-indices", "indices"),
    ("m = make()\nm.indptr = other", "sparse-indices", "indptr"),
    # paths and files reachable through libraries
    ("import matplotlib\nroot = matplotlib.get_data_path()", "api-excluded", "get_data_path"),
    ("import matplotlib\nmatplotlib.Path('outputs/x').write_text('1')", "api-excluded", "Path"),
    ("st = df.style\nst.this_dir.parent", "api-excluded", "this_dir"),
    ("st = df.style\nst.template_dir", "api-excluded", "template_dir"),
    ("st = df.style\nst.loader.list_templates()", "api-excluded", "loader"),
    ("arr = df.to_numpy()\narr.dump('outputs/a.npy')", "api-excluded", "dump"),
    ("arr = df.to_numpy()\narr.tofile('outputs/a.bin')", "api-excluded", "tofile"),
    ("import pandas as pd\npd.read_csv('data/a.csv', storage_options={'k': 1})",
     "api-excluded", "storage_options"),
    ("fig = make()\nfig.write_html('outputs/f.html', auto_open=True)", "api-excluded",
     "auto_open"),
    ("f = make()\nf.save(opener=handler)", "api-excluded", "opener"),
    ("import matplotlib as mpl\nmpl.rc_file('outputs/evil.rc')", "api-excluded", "rc_file"),
    # code loading and hooks
    ("import typing\nhints = typing.get_type_hints(f)", "api-excluded", "get_type_hints"),
    ("from functools import singledispatch", "import", "singledispatch"),
    ("import matplotlib as mpl\nmpl.rcParams.validate['savefig.format'] = str",
     "api-excluded", "validate"),
    ("import plotly.io as pio\npio.renderers.default = 'browser'", "api-excluded",
     "renderers"),
    ("fig = make()\nfig.show(renderer='browser')", "api-excluded", "renderer"),
    ("import scipy\nscipy.test()", "api-excluded", "test"),
    ("import statsmodels.api as sm\nsm.tsa.x13_arima_analysis(y)", "api-excluded", "x13"),
    ("obj = make()\nobj.canvas.mpl_connect('draw_event', cb)", "api-excluded", "mpl_connect"),
    # unknown names are refused, and say how to ask for them
    ("fig = make()\nfig.some_new_gadget()", "api-attribute", "extra_attributes"),
    ("import numpy as np\nnp.not_an_api_name_anywhere", "missing-attribute", "Check the name"),
    ("obj = make()\nobj.fit(x, brand_new_flag=True)", "api-keyword", "extra_keywords"),
    ("obj = make()\nobj.fit(x, **settings)", "unpacked-arguments", "dict"),
    ("a = make()\nopts = {'refcheck': False}\na.resize(3, **opts)", "api-excluded",
     "refcheck"),
    ("def wrap(a, **kw):\n    kw['refcheck'] = False\n    return a.resize(2, **kw)",
     "unpacked-arguments", "dict"),
    # dunder definitions and patching
    ("def __getattr__(name):\n    return 1", "dunder", "Defining"),
    ("__builtins__ = {}", "dunder", "Defining"),
    ("class Sneaky:\n    def __reduce__(self):\n        return (print, ('x',))", "dunder",
     "Defining"),
    ("class Later:\n    def __del__(self):\n        pass", "dunder", "Defining"),
    ("import math as __loader__", "dunder", "Defining"),
    ("import pandas as pd\npd.DataFrame.sum = lambda self: 0", "library-patch", "library"),
    ("import pandas as pd\nS = pd.Series\nS.mean = len", "library-patch", "library"),
    ("type(df).head = None", "library-patch", "library"),
    ("import numpy as np\nnp.random.sneaky = 1", "module-patch", "library"),
    ("df.sum = lambda: 42", "library-patch", "replaces"),
    ("import numpy as np\nnp.seterrcall(print)", "api-excluded", "hooks"),
    ("match st:\n    case Styler(this_dir=d):\n        pass", "api-excluded", "this_dir"),
    ("match st:\n    case Styler(gadget=d):\n        pass", "api-attribute", "gadget"),
    ("class Meta(base, metaclass=kind):\n    pass", "class-keyword", "metaclass"),
    # settings stores, settings files and savefig formats that run programs
    ("import matplotlib.pyplot as plt\nplt.rcParams[key] = value", "plot-settings", "literal"),
    ("import matplotlib as mpl\nwith mpl.rc_context(fname='outputs/r.rc'):\n    pass",
     "plot-settings", "settings file"),
    ("import matplotlib.pyplot as plt\nplt.savefig('outputs/chart.pgf')", "external-program",
     "TeX"),
    ("import matplotlib.pyplot as plt\nplt.savefig('outputs/chart', format='eps')",
     "external-program", "Ghostscript"),
    ("import matplotlib.pyplot as plt\nplt.savefig('outputs/c.png', format=kind)",
     "external-program", "computed"),
    ("from scipy import sparse\nm = sparse.csc_array((vals, rows_idx, ptr))", "sparse-indices",
     "bounds"),
    # templated and computed paths
    ("import matplotlib.pyplot as plt\nplt.savefig(f'outputs/{name}.png')", "io-path",
     "computed"),
    ("df.to_csv(f'outputs/{sub}/t_{k}.csv')", "io-path", "computed"),
    ("df.to_json(f'data/part_{k}.json')", "io-path", "computed"),
    ("plt.savefig(f'outputs/p_{a}{b}.png')", "io-path", "computed"),
    ("obj = make()\nobj.load_it(fname=where)", "io-path", "computed"),
    ("fig = make()\nfig.canvas.print_png('/tmp/leak.png')", "io-path", "outside"),
    ("fig = make()\nfig.canvas.print_pgf('outputs/leak.pgf')", "api-excluded", "program"),
]


@pytest.mark.parametrize("code, rule, words", REFUSED,
                         ids=[c.splitlines()[-1][:45] for c, _, _ in REFUSED])
def test_refused_with_a_message_naming_the_problem(code, rule, words):
    report = validator.validate(code)
    assert not report.allowed or rule == "missing-attribute", report.summary()
    findings = {f.rule: f.message for f in report.findings}
    assert rule in findings, report.summary()
    assert words.lower() in findings[rule].lower(), findings[rule]


ALLOWED = [
    # a small helper class: its own names, private ones included
    "class Cache:\n    def __init__(self):\n        self._store = {}\n"
    "    def put(self, key, value):\n        self._store[key] = value\n"
    "    def get(self, key):\n        return self._store.get(key)\n"
    "c = Cache()\nc.put('a', 1)\nc._store",
    "class Stats:\n    unit = 'kg'\n    def __init__(self, values):\n        self.values = values\n"
    "    def __repr__(self):\n        return f'Stats({len(self.values)} {self.unit})'\n"
    "s = Stats([1, 2])\nprint(s.values, Stats.unit)",
    "class Scaler(object):\n    def __init__(self, k):\n        super().__init__()\n"
    "        self.k = k\n    def apply(self, frame):\n        return frame * self.k\n"
    "Scaler(2).apply(df)",
    # columns as attributes, on frames
    "df.price.mean()",
    "sub = df[df.qty > 3]\nsub.price.max()",
    "def summary(frame):\n    return frame.revenue.sum()\nsummary(df.copy())",
    "for row in df.itertuples():\n    print(row.city)",
    "df.groupby('g').sales.sum()",
    "df.when = pd.to_datetime(df.when)",
    # settings and outputs analysis really writes
    "import pandas as pd\npd.options.display.float_format = '{:.2f}'.format",
    "import matplotlib.pyplot as plt\nplt.rcParams['figure.figsize'] = (8, 4)",
    "df.columns = ['a', 'b']\ndf.index.name = 'day'",
    "import numpy as np\nnp.pad(np.ones(3), 2, constant_values=0)",
    "import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\n"
    "ax.tick_params(labelbottom=False)\nfig.tight_layout()",
    "import plotly.express as px\nfig = px.line(df, x='a', y='b')\n"
    "fig.update_layout(xaxis_title_text='day', legend_title_font_size=10)",
    "opts = {'color': 'red', 'alpha': 0.5}\nimport matplotlib.pyplot as plt\nplt.plot(x, **opts)",
    "def plot(frame, **kw):\n    return frame.plot(**kw)\nplot(df, kind='bar')",
    "import pandas as pd\npd.set_option('display.max_rows', 20)",
    "class Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n"
    "match Point(1, 2):\n    case Point(x=0, y=yy):\n        print(yy)",
    "import matplotlib.pyplot as plt\nfor col in ['a', 'b']:\n    df[col].hist()\n"
    "    plt.savefig(f'outputs/hist_{col}.png')",
    "for k, part in df.groupby('g'):\n    part.to_csv(f'outputs/group_{k}_{len(part):03d}.csv')",
    "from scipy import sparse\nm = sparse.csr_matrix((vals, (rows_idx, cols_idx)), shape=(3, 3))",
]


@pytest.mark.parametrize("code", ALLOWED, ids=[c.splitlines()[-1][:45] for c in ALLOWED])
def test_analysis_code_still_passes(code):
    report = validator.validate(code)
    assert report.allowed and not report.violations, report.summary()


def test_a_class_member_does_not_unlock_library_objects():
    # a member name only allows that name on the class and its instances
    code = ("class Box:\n    def __init__(self):\n        self.gadget = 1\n"
            "b = Box()\nb.gadget\nst = df.style\nst.gadget")
    report = validator.validate(code)
    assert [f.line for f in report.violations] == [7], report.summary()
    # excluded families stay refused on the code's own objects
    code = "class Box:\n    def __init__(self):\n        self.this_dir = 1\nBox().this_dir"
    assert {f.line for f in validator.validate(code).violations} == {3, 4}
    # and deleting an own name (to uncover a library base class's) is refused
    code = ("class S(type(df.style)):\n    gadget = None\n    def get(self):\n"
            "        return self.gadget\ndel S.gadget")
    assert "library-patch" in {f.rule for f in validator.validate(code).violations}


def test_keywords_of_own_functions_do_not_unlock_library_calls():
    code = ("def fit(x, shiny=1):\n    return x\nfit(1, shiny=2)\nmodel = make()\n"
            "model.fit(1, shiny=2)")
    report = validator.validate(code)
    assert [f.line for f in report.violations] == [5], report.summary()


def test_only_frames_have_columns():
    # '_' is IPython's last output and the helpers are functions: no column rule for them
    for code in ("_.gadget", "save_table.gadget", "class P:\n    gadget = 1\nP = make()\n"
                 "p = P()\np.gadget"):
        assert "api-attribute" in {f.rule for f in validator.validate(code).violations}, code


def test_chunked_readers_are_not_frames():
    code = "import pandas as pd\nr = pd.read_csv('data/x.csv', chunksize=10)\nr.gadget"
    assert "api-attribute" in {f.rule for f in validator.validate(code).violations}


def test_extras_allow_names_but_never_excluded_families():
    code = "fig = make()\nfig.some_new_gadget()"
    assert SafetyValidator(extra_attributes=["some_new_gadget"]).validate(code).allowed
    assert not SafetyValidator(extra_attributes=["ctypes"]).validate(
        "a = make()\na.ctypes").allowed
    assert SafetyValidator(extra_keywords=["brand_new_flag"]).validate(
        "obj = make()\nobj.fit(x, brand_new_flag=True)").allowed


def test_option_keys_are_never_run_as_regular_expressions():
    # a catastrophic pattern would take minutes if anything ran it; refused at once
    key = "(" + "a*" * 30 + ")*b"
    started = time.perf_counter()
    report = validator.validate(f"import pandas as pd\npd.set_option({key!r}, 1)")
    assert time.perf_counter() - started < 1.0
    assert "pandas-option" in {f.rule for f in report.violations}
    # a dotted name still matches the way pandas would ('.' is any character there)
    report = validator.validate("import pandas as pd\npd.set_option('plotting.backend', 'x')")
    assert "plot-backend" in {f.rule for f in report.violations}


def test_the_frame_inference_is_inside_the_time_budget():
    # names bound to each other many ways: inferring whether x0 is a frame branches
    lines = [f"x{i} = x{i + 1}.copy()\nx{i} = x{i + 2}.head()" for i in range(40)]
    code = "\n".join(lines + ["x0.gadget"])
    started = time.perf_counter()
    report = SafetyValidator(time_budget=0.5).validate(code)
    assert time.perf_counter() - started < 5
    assert not report.allowed


def test_the_time_budget_covers_parsing_and_everything_after():
    code = "x = [" + ", ".join(f"df.a{i}" for i in range(5000)) + "]"
    report = SafetyValidator(time_budget=0.001).validate(code)
    assert report.risk_level is RiskLevel.CRITICAL
    assert [f.rule for f in report.violations] == ["time-budget"]
