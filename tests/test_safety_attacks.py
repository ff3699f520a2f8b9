"""The safety validator against attacks (refused, with the right rule) and look-alikes
(allowed). Each class has several variants; the ones peers were bypassed by come first."""

from __future__ import annotations

import pytest

from jupyter_analyst.safety import RiskLevel, SafetyValidator

validator = SafetyValidator()

# (code, rule expected among the violations)
ATTACKS = {
    "imports": [
        ("import os", "import"),
        ("import subprocess as sp", "import"),
        ("import importlib\nimportlib.import_module('os')", "import"),
        ("import sys", "import"),
        ("import builtins", "import"),
        ("import pickle", "import"),
        ("import ctypes", "import"),
        ("from os import system", "import"),
        ("import numpy.f2py", "import"),
        ("from numpy import f2py", "module-attribute"),
        ("from numpy.lib import npyio", "import"),
        ("from pandas.io import common", "import"),
        ("import statsmodels", "import"),
        ("from . import runtime", "import"),
        ("from .runtime import save_metrics", "import"),
        ("from math import *", "import"),
        ("from pandas import *", "import"),
        ("from io import open", "import"),
        ("from operator import attrgetter", "import"),
        ("from jupyter_analyst.runtime import os", "import"),
        ("from jupyter_analyst.runtime import json_safe", "import"),
        ("from sklearn.datasets import fetch_openml", "import"),
        ("__import__('os').system('id')", "dunder"),
        ("def f():\n    import os\n    return os", "import"),
    ],
    "builtins": [
        ("eval('1')", "builtin"),
        ("exec('x = 1')", "builtin"),
        ("compile('1', 'f', 'eval')", "builtin"),
        ("getattr(df, 'to_csv')('/etc/x')", "builtin"),
        ("setattr(df, 'x', 1)", "builtin"),
        ("delattr(df, 'x')", "builtin"),
        ("globals()['x']", "builtin"),
        ("locals()", "builtin"),
        ("vars(df)", "builtin"),
        ("breakpoint()", "builtin"),
        ("open('/etc/passwd').read()", "io-path"),
        ("input('name? ')", "builtin"),
        ("help(df)", "builtin"),
        ("exit()", "builtin"),
        ("quit()", "builtin"),
        ("get_ipython().system('ls')", "builtin"),
        ("get_ipython().run_line_magic('env', '')", "builtin"),
        ("Out[1]", "builtin"),
        ("_ih[-1]", "builtin"),
        ("list(map(eval, ['1']))", "builtin"),
        ("f = open\nf('/etc/passwd')", "builtin"),
        ("__builtins__['eval']('1')", "dunder"),
        ("if False:\n    eval = print\neval('1')", "builtin"),
        ("class A:\n    input = 1\n    x = input()", "builtin"),
        ("[0 for input in input()]", "builtin"),
        ("def f():\n    return [x for eval in eval('[1]')]", "builtin"),
    ],
    "introspection": [
        ("().__class__.__bases__[0].__subclasses__()", "dunder"),
        ("df.__dict__", "dunder"),
        ("save_metrics.__globals__['os']", "dunder"),
        ("type(df).__mro__", "dunder"),
        ("g = (i for i in [1])\ng.gi_frame.f_back.f_globals", "introspection"),
        ("g = (i for i in [1])\nf = g.gi_frame\nf.f_back", "introspection"),
        ("try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__.tb_frame", "dunder"),
        ("def h(tb):\n    return tb.tb_frame.f_globals", "introspection"),
        ("def f():\n    pass\nf.__code__.co_code", "dunder"),
        ("def f(c):\n    return c.co_consts", "introspection"),
        ("async def f():\n    pass\nf().cr_frame", "introspection"),
        ("class A:\n    def m(self):\n        return __class__", "dunder"),
        ("df._mgr", "private-attribute"),
        ("x = 'abc'\nx.__len__()", "dunder"),
    ],
    "module attributes": [
        ("import numpy as np\nnp.f2py.os.system('id')", "module-attribute"),
        ("import pandas as pd\npd.io.common.os.system('id')", "module-attribute"),
        ("import matplotlib.pyplot as plt\nplt.cbook.subprocess.run(['id'])", "module-attribute"),
        ("import matplotlib.pyplot as plt\nplt.matplotlib.cbook", "module-attribute"),
        ("import scipy\nscipy.misc.face()", "module-attribute"),
        ("import numpy as np\nnp.lib.npyio.DataSource()", "module-attribute"),
        ("import numpy as np\nnp.lib.format.open_memmap('/etc/x')", "module-attribute"),
        ("import numpy as np\nx = np.lib", "module-alias"),
        ("import numpy as np\nnp.testing", "module-attribute"),
        ("import numpy as np\nnp.ctypeslib.ctypes", "module-attribute"),
        ("import statsmodels.api as sm\nsm.datasets.get_rdataset('x')", "module-attribute"),
        ("import pandas as pd\npd.core.frame.DataFrame", "module-attribute"),
        ("import numpy as np\nnp.not_a_module.os.system('id')", "missing-attribute"),
        ("np.f2py.os", "module-attribute"),  # no import: np from an earlier cell
        ("import io\nio.open('/etc/passwd')", "module-attribute"),
        ("import numpy as np\nnp.random = None", "module-patch"),
        ("import json\njson.loads = print", "module-patch"),
    ],
    "string entry points": [
        ("df.query('@x.__class__')", "pandas-expression"),
        ("df.query(\"@pd.io.common.os.system('id')\")", "pandas-expression"),
        ("df.query('a.__class__ == 1')", "pandas-expression"),
        ("df.query(\"a.str.contains('x')\")", "pandas-expression"),
        ("df.query('@eval')", "pandas-expression"),
        ("df.query('a > 1', engine='python')", "pandas-expression"),
        ("df.query('a > 1', local_dict={'a': 1})", "pandas-expression"),
        ("df.query(q)", "pandas-expression"),
        ("q = '@x.y'\ndf.query(q)", "pandas-expression"),
        ("df.query('@x' + '.y')", "pandas-expression"),
        ("df.eval('b = a.sum()')", "pandas-expression"),
        ("import pandas as pd\npd.eval('1 + 1', engine='python')", "pandas-expression"),
        ("import pandas as pd\npd.eval('df.a')", "pandas-expression"),
        ("df.plot(backend='evil')", "plot-backend"),
        ("df.plot.line(backend='module://evil')", "plot-backend"),
        ("import pandas as pd\npd.options.plotting.backend = 'evil'", "plot-backend"),
        ("import pandas as pd\npd.set_option('plotting.backend', 'evil')", "plot-backend"),
        ("import pandas as pd\npd.set_option('plotting.b.*', 'evil')", "pandas-option"),
        ("import pandas as pd\npd.set_option('display.width', 80, 'backend', 'evil')",
         "plot-backend"),
        ("import pandas as pd\nwith pd.option_context('plotting.backend', 'evil'):\n    pass",
         "plot-backend"),
        ("import matplotlib.pyplot as plt\nplt.switch_backend('module://evil')", "plot-backend"),
        ("import matplotlib\nmatplotlib.use('module://evil')", "plot-backend"),
        ("import matplotlib as mpl\nmpl.rcParams['backend'] = 'module://evil'", "plot-backend"),
        ("import matplotlib.pyplot as plt\nplt.rcParams.update({'backend': b})", "plot-backend"),
        ("opts = {}\nopts.setdefault('backend', 'evil')", "plot-backend"),
        ("import matplotlib.pyplot as plt\nplt.style.use('/etc/evil.mplstyle')", "plot-style"),
        ("import matplotlib.pyplot as plt\nplt.style.use('https://x/y.mplstyle')", "plot-style"),
        ("import matplotlib.pyplot as plt\nplt.style.use('os.path')", "plot-style"),
        ("'{0.__class__}'.format(1)", "format-template"),
        ("'{0.gi_frame.f_back}'.format(g)", "format-template"),
        ("'{x.real}'.format_map({'x': 1})", "format-template"),
        ("t = '{0.real}'\nt.format(1)", "format-template"),
        ("str.format('{0.real}', 1)", "format-template"),
        ("df.style.format('{0.real}')", "format-template"),
        ("fmt.format(x)", "format-template"),
        ("f = '{0.real}'.format\nf(1)", "format-template"),
        ("df.agg('query', '@np.f2py.os.system(1)')", "string-dispatch"),
        ("df.apply('to_csv', path_or_buf='/tmp/x')", "string-dispatch"),
        ("df.groupby('a').agg(n=('b', 'style'))", "string-dispatch"),
        ("df.agg({'a': ['min', 'eval']})", "string-dispatch"),
        ("df.transform(func='pipe')", "string-dispatch"),
        ("import statsmodels.formula.api as smf\nsmf.ols(\"y ~ I(open('/etc/passwd'))\", df)",
         "formula"),
        ("import statsmodels.formula.api as smf\nsmf.ols('y ~ I(np.f2py.os.system(1))', df)",
         "formula"),
        ("import statsmodels.formula.api as smf\nsmf.logit(formula=f, data=df)", "formula"),
        ("import statsmodels.api as sm\nsm.OLS.from_formula('y ~ x.real', df)", "formula"),
        ("import statsmodels.formula.api as smf\n"
         "smf.mixedlm('y ~ x', df, groups=g, vc_formula={'a': 'I(open(1))'})", "formula"),
        ("df.style.env.from_string('{{ 1 }}').render()", "template-engine"),
        ("df.style.from_custom_template('data/templates', 'x.tpl')", "template-engine"),
        ("import matplotlib.pyplot as plt\nplt.rcParams['text.usetex'] = True",
         "external-program"),
        ("import matplotlib.pyplot as plt\nplt.text(0, 0, 'x', usetex=True)", "external-program"),
        ("import matplotlib as mpl\nmpl.rcParams['animation.ffmpeg_path'] = '/bin/sh'",
         "external-program"),
        ("import matplotlib.pyplot as plt\nplt.switch_backend('pgf')", "plot-backend"),
        ("import pandas as pd\npd.read_xml('data/x.xml', stylesheet='data/x.xsl')", "xslt"),
        ("df.to_xml('outputs/x.xml', stylesheet='data/x.xsl')", "xslt"),
    ],
    "io": [
        ("import pandas as pd\npd.read_csv('/etc/passwd')", "io-path"),
        ("df.to_csv('../x.csv')", "io-path"),
        ("df.to_csv('outputs/../../etc/x')", "io-path"),
        ("import pandas as pd\npd.read_csv('https://evil.example/x.csv')", "io-path"),
        ("import pandas as pd\npd.read_csv('file:///etc/passwd')", "io-path"),
        ("import pandas as pd\npd.read_csv('x.csv')", "io-path"),
        ("import pandas as pd\npd.read_csv('~/secrets.csv')", "io-path"),
        ("import pandas as pd\npd.read_csv('data/' + '../../etc/passwd')", "io-path"),
        ("import pandas as pd\npd.read_csv(f'data/{name}')", "io-path"),
        ("import pandas as pd\npath = 'data/x.csv'\npd.read_csv(path)", "io-path"),
        ("import pandas as pd\npd.read_csv(**{'filepath_or_buffer': '/etc/passwd'})",
         "unpacked-arguments"),
        ("import pandas as pd\nread = pd.read_csv\nread('/etc/passwd')", "indirect-call"),
        ("from pandas import read_csv as rc\nrc('/etc/passwd')", "io-path"),
        ("import pandas as pd\npd.read_csv(open('/etc/passwd'))", "io-path"),
        ("import numpy as np\nnp.load('data/x.npy', allow_pickle=True)", "io-pickle"),
        ("import numpy as np\nnp.load('data/x.npy', allow_pickle=flag)", "io-pickle"),
        ("import pandas as pd\npd.read_pickle('data/x.pkl')", "io-pickle"),
        ("import pandas as pd\npd.read_hdf('data/x.h5')", "io-pickle"),
        ("df.to_pickle('outputs/x.pkl')", "io-pickle"),
        ("import statsmodels.api as sm\nsm.load('data/model.pkl')", "io-pickle"),
        ("import numpy as np\nnp.fromfile('/etc/passwd')", "io-path"),
        ("import numpy as np\nnp.memmap('/etc/passwd')", "io-path"),
        ("import numpy as np\nnp.memmap('data/x.bin', mode='w+')", "io-path"),
        ("import numpy as np\nnp.save('data/x.npy', a)", "io-path"),
        ("df.to_parquet('/sandbox/data/df.parquet')", "io-path"),
        ("import matplotlib.pyplot as plt\nplt.savefig('/tmp/../etc/x.png')", "io-path"),
        ("import matplotlib.pyplot as plt\nplt.imread('/etc/x.png')", "io-path"),
        ("import matplotlib\nmatplotlib.rc_file('/etc/x')", "api-excluded"),
        ("open('data/x.csv', 'w')", "io-path"),
        ("open(0).read()", "io-path"),
        ("open('data/x.csv', mode)", "io-path"),
        ("with open('x.csv') as f:\n    f.read()", "io-path"),
        ("import pandas as pd\nwith open('/etc/passwd') as f:\n    pd.read_csv(f)", "io-path"),
        ("import pandas as pd\nf = open('data/x.csv')\nf = fetch()\npd.read_csv(f)", "io-path"),
        ("list(map(open, ['/etc/passwd']))", "builtin"),
        ("import seaborn as sns\nsns.load_dataset('tips')", "io-unavailable"),
        ("import pandas as pd\npd.read_clipboard()", "io-unavailable"),
        ("df.to_sql('t', con)", "io-unavailable"),
    ],
    "magics": [
        ("!ls", "magic"),
        ("x = 1\n!cat /etc/passwd", "magic"),
        ("files = !ls", "magic"),
        ("%time x = 1", "magic"),
        ("%env SECRET", "magic"),
        ("%%bash\nls", "magic"),
        ("%%writefile outputs/x.py\nprint(1)", "magic"),
        ("df?", "magic"),
        ("x = 1\n%run /tmp/x.py", "magic"),
    ],
    "syntax positions": [
        ("@eval\ndef f():\n    pass", "builtin"),
        ("@(lambda f: __import__('os'))\ndef g():\n    pass", "dunder"),
        ("def f(x=open('/etc/passwd')):\n    pass", "io-path"),
        ("def f(x=eval('1')):\n    pass", "builtin"),
        ("def f(x: eval('1')):\n    pass", "builtin"),
        ("def f() -> eval('1'):\n    pass", "builtin"),
        ("x: eval('1') = 1", "builtin"),
        ("lambda: eval('1')", "builtin"),
        ("lambda x=open('/etc/passwd'): x", "io-path"),
        ("match x:\n    case object(__class__=c):\n        pass", "dunder"),
        ("match g:\n    case G(gi_frame=f):\n        pass", "introspection"),
        ("import numpy as np\nmatch x:\n    case np.f2py.os:\n        pass", "module-attribute"),
        ("class A:\n    class B:\n        x = eval('1')", "builtin"),
        ("class A(metaclass=eval):\n    pass", "builtin"),
        ("class A(df.__class__):\n    pass", "dunder"),
        ("(e := eval)('1')", "builtin"),
        ("[y := x.__class__ for x in [1]]", "dunder"),
        ("if (f := open('/etc/passwd')):\n    pass", "io-path"),
        ("x = f'{eval(\"1\")}'", "builtin"),
        ("x = f'{df.__class__}'", "dunder"),
        ("x = f'{0:{df.__class__}}'", "dunder"),
        ("try:\n    pass\nexcept eval('E'):\n    pass", "builtin"),
        ("with open('/etc/passwd') as f:\n    pass", "io-path"),
        ("for x in eval('[1]'):\n    pass", "builtin"),
        ("async def f():\n    async for x in eval('y'):\n        pass", "builtin"),
        ("del df.__class__", "dunder"),
        ("x = [i for i in range(3) if eval('1')]", "builtin"),
        ("x = {k: eval(k) for k in ['1']}", "builtin"),
    ],
    "aliasing": [
        ("e = eval", "builtin"),
        ("import pandas as pd\nx = pd\nx.io.common.os", "module-alias"),
        ("import numpy as np\nmods = [np]\nmods[0].f2py", "module-alias"),
        ("import numpy as np\ndef f(m):\n    return m.f2py\nf(np)", "module-alias"),
        ("import numpy as np\nf = np.load\nf('/etc/passwd')", "indirect-call"),
        ("import numpy\nnp2 = numpy\nnp2.f2py", "module-alias"),
        ("g = __builtins__", "dunder"),
        ("from numpy import lib", "import"),
        ("import numpy as np\nx = np if True else None", "module-alias"),
        ("import pandas as pd\nrunner = df.query\nrunner('@x.y')", "indirect-call"),
        ("def f():\n    import numpy as np\n    x = np\n    return x.f2py.os", "module-alias"),
        ("if False:\n    np = 0\nnp.f2py.os.system('id')", "module-attribute"),
    ],
}

# Code that looks close to an attack but is ordinary analysis: must pass without violations.
BENIGN = [
    "df['system'].sum()",
    "df.system.mean()",
    "df['os'].value_counts()",
    "df[df['name'].str.contains('os')]",
    "df[df.cmd.str.contains('eval')]",
    "df.query('a > 1')",
    "df.query('a > 1 and `b c` < 2')",
    "df.query('Category == @values')",
    "df.eval('c = a + b')",
    "df.groupby('g').agg(total=('b', 'sum'), n=('b', 'count'))",
    "df.agg({'a': ['min', 'max'], 'b': 'mean'})",
    "df.groupby('g')['b'].transform('mean')",
    "import numpy as np\ndf.apply(np.sqrt)",
    "import statsmodels.formula.api as smf\n"
    "fit = smf.ols('y ~ x + C(g) + np.log(z) + x:z - 1', data=df).fit()",
    "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.savefig('outputs/plot.png')",
    "df.to_csv('outputs/summary.csv', index=False)",
    "df.to_csv()",
    "import pandas as pd\nextra = pd.read_parquet('data/df.parquet')",
    "import pandas as pd\nextra = pd.read_csv('/sandbox/data/x.csv')",
    "import pandas as pd\nback = pd.read_csv('outputs/summary.csv')",
    "import pandas as pd\nextra = pd.read_csv('data/' + 'x.csv')",
    "from jupyter_analyst.runtime import save_metrics, save_table\n"
    "save_metrics({'mean': float(df['a'].mean())})\nsave_table(df.describe(), 'summary')",
    "save_metrics({'rows': len(df)})",
    "display(df.head())\nprint(df.describe())",
    "import numpy as np\nnp.random.seed(0)\nx = np.random.normal(size=10)",
    "import numpy as np\nnp.lib.stride_tricks.sliding_window_view(np.arange(5), 3)",
    "import numpy as np\nnp.load('data/x.npy')",
    "import numpy as np\nnp.save('outputs/x.npy', np.arange(3))",
    "def f(input):\n    return input + 1",
    "def f():\n    vars = ['a', 'b']\n    return vars",
    "label = '{:.2f}'.format(3.14159)",
    "labels = list(map('{:.1%}'.format, [0.1, 0.2]))",
    "label = '{0[1]}_{0[0]}'.format(('a', 'b'))",
    "label = f'{df.a.mean():.2f}'",
    "styled = df.style.format('{:.1%}')",
    "import pandas as pd\npd.set_option('display.max_rows', 10)",
    "import pandas as pd\npd.options.display.max_columns = 20",
    "import matplotlib.pyplot as plt\nplt.style.use('ggplot')",
    "import matplotlib.pyplot as plt\nplt.switch_backend('agg')",
    "df.plot(kind='bar', backend='matplotlib')",
    "with open('data/notes.txt') as f:\n    text = f.read()",
    "import pandas as pd\nwith open('data/x.csv') as f:\n    extra = pd.read_csv(f)",
    "import pandas as pd\nwith pd.ExcelWriter('outputs/x.xlsx') as w:\n    df.to_excel(w)",
    "with open('outputs/notes.txt', 'w') as f:\n    f.write('done')",
    "import io\nimport matplotlib.pyplot as plt\nbuf = io.BytesIO()\n"
    "plt.savefig(buf, format='png')",
    "import io\nimport pandas as pd\nsmall = pd.read_csv(io.StringIO('a,b\\n1,2'))",
    "name = type(model).__name__",
    "class Point:\n    def __init__(self, x):\n        self.x = x\n    def __repr__(self):\n"
    "        return f'Point({self.x})'",
    "import scipy.spatial\nkdtree = scipy.spatial.cKDTree(points)\nd, i = kdtree.query(x)",
    "from sklearn.linear_model import LinearRegression\nmodel = LinearRegression().fit(X, y)",
    "import statsmodels.api as sm\nresult = sm.OLS(y, sm.add_constant(X)).fit()",
    "from scipy import stats\nt, p = stats.ttest_ind(a, b)",
    "import seaborn as sns\nsns.histplot(df['a'])",
    "match p:\n    case Point(x=0):\n        pass",
    "if (n := len(df)) > 10:\n    print(n)",
    "rows = sorted(rows, key=lambda r: r[1])",
    "for _ in range(3):\n    pass",
    "# eval the model and open the report\nscore = 1",
    "doc = 'eval, exec and open are words'",
    "from collections import Counter\nfrom functools import reduce\nimport math, re, json",
    "import plotly.express as px\nfig = px.line(df, x='a', y='b')\n"
    "fig.write_html('outputs/fig.html')",
    "from IPython.display import display\ndisplay(df)",
]


CASES = [pytest.param(code, rule, id=f"{group}: {code.splitlines()[-1][:40]}")
         for group, cases in ATTACKS.items() for code, rule in cases]


@pytest.mark.parametrize("code, rule", CASES)
def test_attack_is_refused_with_the_right_rule(code, rule):
    report = validator.validate(code)
    assert not report.allowed, f"allowed:\n{code}"
    assert rule in {f.rule for f in report.violations}, report.summary()
    for finding in report.violations:  # every finding says where, what and what to do
        assert finding.line >= 1 and finding.message.endswith("."), finding
        assert len(finding.message) > 30


@pytest.mark.parametrize("code", BENIGN, ids=[c.splitlines()[-1][:40] for c in BENIGN])
def test_benign_look_alike_passes(code):
    report = validator.validate(code)
    assert report.allowed and not report.violations, report.summary()


@pytest.mark.parametrize("code", ["!ls", "%time x = 1", "%%bash\nls"])
def test_magics_are_refused_not_stripped(code):
    report = validator.validate(code)
    assert report.risk_level is RiskLevel.CRITICAL
    assert [f.rule for f in report.findings] == ["magic"]
    assert report.matches(code) and not report.matches(code.lstrip("!%"))


def test_a_name_bound_in_a_function_never_falls_back_to_the_builtin():
    # Python makes any name assigned in a function local to all of it, so this eval is
    # the (unbound) local, never the builtin: running it raises instead of evaluating.
    code = "def f():\n    if False:\n        eval = print\n    return eval('1')\n"
    assert validator.validate(code).allowed
    namespace: dict = {}
    exec(code, namespace)  # defines f only
    with pytest.raises(UnboundLocalError):
        namespace["f"]()
    # at module level (and in class bodies) the same code would reach the builtin
    module_level = "if False:\n    eval = print\neval('1')\n"
    assert "builtin" in {f.rule for f in validator.validate(module_level).violations}


def test_refused_modules_are_never_imported_by_the_validator():
    # The validator imports allowed libraries to inspect them; a refused name must not be
    # imported in the notebook's process ("this" prints on import, "antigravity" opens a
    # browser), whatever the code does with it.
    import sys

    for module in ("this", "antigravity"):
        assert module not in sys.modules
        code = (f"from {module} import thing as np\nnp.other.x\nimport {module}\n"
                f"{module}.x.y\nfrom {module}.sub import z\nz.w")
        assert not validator.validate(code).allowed
        assert module not in sys.modules


def test_the_report_is_tied_to_the_exact_text():
    code = "x = 1\n"
    report = validator.validate(code)
    assert report.allowed and report.matches(code)
    assert not report.matches(code + "import os\n") and not report.matches("x = 1")
    assert report.to_dict()["code_sha256"] == report.code_sha256


def test_findings_carry_line_and_column_for_the_approval_panel():
    code = "import pandas as pd\n\ntotal = df['a'].sum()\nsecret = eval('1')\n"
    report = validator.validate(code)
    (finding,) = report.violations
    assert (finding.rule, finding.line, finding.col) == ("builtin", 4, 10)
    assert finding.severity is RiskLevel.CRITICAL
    assert "line 4: " in report.summary()
    assert report.to_dict()["violations"][0]["line"] == 4


def test_severity_mapping():
    assert validator.validate("x = 1").risk_level is RiskLevel.SAFE
    assert validator.validate("import numpy as np\nnp.NAN").risk_level is RiskLevel.MEDIUM
    assert validator.validate("import numpy as np\nnp.NAN").allowed
    assert validator.validate("import os").risk_level is RiskLevel.HIGH
    assert validator.validate("eval('1')").risk_level is RiskLevel.CRITICAL
    assert validator.validate("x = (").risk_level is RiskLevel.CRITICAL


@pytest.mark.parametrize("code, rule", [
    ("-" * 50_000 + "1", None),  # the parser gives up (MemoryError or RecursionError)
    ("f" + "()" * 3000, None),
    ("x" + ".a" * 5000, None),
    ("(" * 300 + ")" * 300, "syntax"),
    ("x = 1" + " + 1" * 600, "too-deep"),  # parses, but nests deeper than the walk follows
    ("[" * 150 + "]" * 150 + "\n" + "x = " + "[" * 180 + "eval" + "]" * 180, None),
    ("x = 1\n" * 30_000, "too-large"),
])
def test_huge_or_deep_input_is_critical_not_a_crash(code, rule):
    report = validator.validate(code)
    assert report.risk_level is RiskLevel.CRITICAL and not report.allowed
    if rule:
        assert rule in {f.rule for f in report.violations}, report.summary()


def test_time_budget_overrun_is_critical():
    code = "\n".join(f"x{i} = df['a'].mean() + {i}" for i in range(200))
    assert SafetyValidator().validate(code).allowed
    report = SafetyValidator(time_budget=0.0).validate(code)
    assert report.risk_level is RiskLevel.CRITICAL
    assert [f.rule for f in report.violations] == ["time-budget"]


@pytest.mark.parametrize("bad", [None, b"import os", 42, "\x00", "x = '\ud800'", "\ufeffx = 1"])
def test_never_raises(bad):
    report = validator.validate(bad)
    assert report.risk_level in set(RiskLevel)


def test_extra_modules():
    code = "import hashlib\ndigest = hashlib.sha256(b'x').hexdigest()"
    assert not SafetyValidator().validate(code).allowed
    # the module's members are allowed with it; attributes of what they return are not
    assert not SafetyValidator(extra_modules=["hashlib"]).validate(code).allowed
    custom = SafetyValidator(extra_modules=["hashlib"], extra_attributes=["hexdigest"])
    assert custom.validate(code).allowed
    assert not custom.validate("import os").allowed
    # a module attribute that is a module stays refused in an extra module too
    assert not SafetyValidator(extra_modules=["json"]).validate("import json\njson.decoder"
                                                                ".re").allowed


def test_extra_read_and_write_paths():
    read = "import pandas as pd\nx = pd.read_csv('/mnt/shared/prices.csv')"
    write = "df.to_csv('/mnt/scratch/out.csv')"
    assert not validator.validate(read).allowed and not validator.validate(write).allowed
    custom = SafetyValidator(extra_read_paths=["/mnt/shared"], extra_write_paths=["/mnt/scratch"])
    assert custom.validate(read).allowed and custom.validate(write).allowed
    assert not custom.validate("df.to_csv('/mnt/shared/x.csv')").allowed  # read-only
    assert custom.validate("import pandas as pd\npd.read_csv('/mnt/scratch/out.csv')").allowed
    assert not custom.validate("import pandas as pd\npd.read_csv('/mnt/sharedX/a.csv')").allowed
    relative = SafetyValidator(extra_write_paths=["scratch"])
    assert relative.validate("df.to_csv('scratch/x.csv')").allowed
    assert relative.validate("df.to_csv('/sandbox/scratch/x.csv')").allowed
