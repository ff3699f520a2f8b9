"""Strings that libraries evaluate: pandas expressions, patsy formulas, format templates,
string dispatch, option stores, template engines. Each class has payloads that must be refused
(with the rule and a message naming the problem) and look-alikes that must pass."""

from __future__ import annotations

import time

import pytest

from jupyter_analyst.safety import RiskLevel, SafetyValidator, strings
from jupyter_analyst.safety.strings import formula_problem, pandas_expression_problem

validator = SafetyValidator()
PD = "import pandas as pd\n"
SMF = "import statsmodels.formula.api as smf\n"
MPL = "import matplotlib as mpl\nimport matplotlib.pyplot as plt\n"
WANTED = ["EU"]  # read by pandas through '@WANTED' below

# (code, rule, words the message must contain)
REFUSED = {
    "pandas expressions": [
        # a backtick inside a quoted literal: a regex mask would swallow the middle part
        ("df.query(\"lbl != '`' or @cfg.secret > 0 or '`' == lbl\")", "pandas-expression",
         "backtick"),
        ("df.query(\"`weird' name` > 2\")", "pandas-expression", "quote"),
        ("df.query('tag == \"a\\\\\\\\\" or `x` > 0')", "pandas-expression", "backslash"),
        ("df.query(\"'''a''' == b\")", "pandas-expression", "triple quotes"),
        ("df.query('`odd``name` > 1')", "pandas-expression", "doubled backtick"),
        ("df.query('`open > 1')", "pandas-expression", "unclosed"),
        ("df.query('@frame.shape > 1')", "pandas-expression", "attribute"),
        ("df.query('score > @limits[0]')", "pandas-expression", "subscript"),
        ("df.query('score > @threshold()')", "pandas-expression", "math functions"),
        ("df.query('@Out')", "pandas-expression", "'Out'"),
        ("df.query('v > @get_ipython')", "pandas-expression", "get_ipython"),
        ("df.query('@_ih')", "pandas-expression", "_ih"),
        ("df.query('sqrt(v, out=w) > 1')", "pandas-expression", "positional"),
        ("df.query('v.abs() > 1')", "pandas-expression", "math functions"),
        ("df.query('[v for v in w]')", "pandas-expression", "listcomp"),
        ("df.query('flag = 1')", "pandas-expression", "assign"),
        ("df.eval('c = a + b\\nd = @obj.field')", "pandas-expression", "attribute"),
        ("df.query('a > 1', level=4)", "pandas-expression", "level"),
        ("df.eval('c = a', engine='python')", "pandas-expression", "python"),
        (PD + "pd.eval('1 + x', 'python')", "pandas-expression", "keywords"),
        (PD + "pd.eval('vars')", "pandas-expression", "vars"),
        (PD + "shell = pd.eval('get_ipython')", "pandas-expression", "get_ipython"),
        ("df.query('x > @open')", "pandas-expression", "open"),
        ("expr = ' and '.join(parts)\ndf.query(expr)", "pandas-expression", "computed"),
    ],
    "formulas": [
        (SMF + "smf.ols(\"y ~ np.save('outputs/a', x)\", data=df)", "formula", "np.save"),
        (SMF + "smf.ols('y ~ np.log(x, out=z)', data=df)", "formula", "'out'"),
        (SMF + "smf.ols('y ~ Q(colname)', data=df)", "formula", "Q()"),
        (SMF + "smf.ols(\"y ~ Q('a' + 'b')\", data=df)", "formula", "Q()"),
        (SMF + "smf.ols(\"y ~ Q('_private')\", data=df)", "formula", "Q()"),
        (SMF + "smf.ols('y ~ x.values', data=df)", "formula", "attributes"),
        (SMF + "smf.ols('y ~ I(x[0])', data=df)", "formula", "subscript"),
        (SMF + "smf.ols(\"y ~ I(len('abc'))\", data=df)", "formula", "'len'"),
        (SMF + "smf.ols('y ~ bs(x, df=k)', data=df)", "formula", "literal"),
        (SMF + "smf.ols('y ~ bs(x, degree=3, extra=1)', data=df)", "formula", "'extra'"),
        (SMF + "smf.ols('y ~ C(g, **opts)', data=df)", "formula", "'**'"),
        (SMF + "smf.ols('y ~ {x}', data=df)", "formula", "set"),
        (SMF + "smf.ols('y ~ `x y`', data=df)", "formula", "patsy cannot parse"),
        (SMF + "smf.ols('y ~ x  # note', data=df)", "formula", "comments"),
        (SMF + "smf.ols('y ~ _hidden', data=df)", "formula", "_hidden"),
        (SMF + "smf.ols('y ~ ' + rhs, data=df)", "formula", "computed"),
        (SMF + "smf.ols('y ~ x', data=df, eval_env=3)", "formula", "eval_env"),
        ("import statsmodels.api as sm\nsm.formula.ols('y ~ np.fromfile(p)', data=df)",
         "formula", "np.fromfile"),
        ("import statsmodels.api as sm\nsm.OLS.from_formula('y ~ lambda_(x)', df)",
         "formula", "lambda_"),
        ("model = smf.glm(formula='y ~ (lambda: 1)()', data=df)", "formula", "patsy cannot parse"),
    ],
    "format templates": [
        ("'{0:{1.imag}}'.format(a, b)", "format-template", "attribute"),
        ("'{v:>{w.real}}'.format(v=1, w=2)", "format-template", "attribute"),
        ("'{!r:{0.real}}'.format(x)", "format-template", "attribute"),
        ("'{0[_hidden]}'.format(d)", "format-template", "private key"),
        ("'{rec.path}'.format_map(d)", "format-template", "attribute"),
        ("tpl = header.upper()\ntpl.format(x)", "format-template", "computed"),
        ("str.format(chosen, x)", "format-template", "computed"),
        ("df.style.format_index('{0.imag}')", "format-template", "attribute"),
        ("fmt = ''.join(['{0.', 'real}'])\ndf.style.format(fmt)", "format-template",
         "computed"),
        ("df.style.format({'a': '{:.1f}', 'b': '{0.x}'})", "format-template", "attribute"),
    ],
    "string dispatch": [
        ("how = 'eva' + 'l'\ndf.agg(how, 'x + 1')", "string-dispatch", "'eval'"),
        ("how = ''.join(['que', 'ry'])\ndf.agg(how, 'a > 1')", "string-dispatch", "computed"),
        ("df.agg(f'{op}')", "string-dispatch", "computed"),
        ("df.apply(names[0])", "string-dispatch", "computed"),
        ("def run(frame, fn):\n    return frame.groupby('k').agg({'v': fn})",
         "string-dispatch", "computed"),
        ("df.agg([m for m in ms])", "string-dispatch", "computed"),
        (PD + "op = pick()\ndf.groupby('g').agg(x=pd.NamedAgg('v', op))", "string-dispatch",
         "computed"),
        ("df.agg(*funcs)", "unpacked-arguments", "unpacking"),
        ("kind = cfg['x']\ndf.groupby('g')['v'].transform(kind)", "string-dispatch",
         "computed"),
        (PD + "pd.pivot_table(df, values='v', index='g', aggfunc='to_csv')", "string-dispatch",
         "'to_csv'"),
        ("def f(op):\n    return df.groupby('g').agg(total=('v', op))", "string-dispatch",
         "computed"),
        ("df.agg(df.columns, 'x')", "string-dispatch", "computed"),
        ("df.agg(s.name, 'x')", "string-dispatch", "computed"),
        ("df.rolling(3).agg('eval')", "string-dispatch", "'eval'"),
        ("df.resample('D').agg(step)\nstep = cfg.pick()", "string-dispatch", "computed"),
        ("df.agg(df.query.__name__, 'a > 1')", "string-dispatch", "computed"),
        ("df.groupby('g').transform(kind_of)\nkind_of = text.strip()", "string-dispatch",
         "computed"),
        ("how = ''.join(['que', 'ry'])\ndf.transform(how, '@x.y > 0')", "string-dispatch",
         "computed"),
        ("df.transform(f'{a}{b}', 'x')", "string-dispatch", "computed"),
        ("name = 'yreuq'[::-1]\ndf.transform(name, 'x')", "string-dispatch", "computed"),
    ],
    "option stores": [
        (PD + "pd.set_option('io.excel.xlsx.writer', 'x')", "pandas-option", "io.excel"),
        (PD + "pd.set_option('display.max_rows', rows)", "pandas-option", "literal"),
        (PD + "pd.set_option(key, 5)", "pandas-option", "literal"),
        (PD + "pd.set_option('(a+)+$', 1)", "pandas-option", "regular expression"),
        (PD + "pd.set_option('max_col', 5)", "pandas-option", "matches 3"),
        (PD + "pd.set_option('plotting.backend', 'plotly')", "plot-backend", "matplotlib"),
        (PD + "pd.set_option({'display.width': w})", "pandas-option", "literal"),
        (PD + "pd.reset_option('.*')", "pandas-option", "regular expression"),
        (PD + "pd.options.plotting.backend = 'outputs.mod'", "option-store", "matplotlib"),
        (PD + "pd.options.d['plotting']['backend'] = 'x'", "option-store", "pd.options.d"),
        (PD + "opts = pd.options\nopts.display.max_rows = 3", "option-store", "pd.options"),
        (PD + "pd.options.display.max_rows = n", "option-store", "literal"),
        (PD + "pd.options.io.parquet.engine = 'x'", "option-store", "io.parquet"),
        (MPL + "plt.rcParams['figure.hooks'] = ['m:f']", "option-store", "figure.hooks"),
        (MPL + "plt.rcParams[key] = 1", "option-store", "literal"),
        (MPL + "plt.rcParams['savefig.directory'] = '/'", "option-store", "savefig.directory"),
        (MPL + "plt.rcParams.update({'pgf.rcfonts': False})", "option-store", "pgf.rcfonts"),
        (MPL + "mpl.rcParams.validate['savefig.format'] = str", "option-store", "rcParams"),
        (MPL + "rc = plt.rcParams\nrc['figure.hooks'] = []", "option-store", "rcParams"),
        (MPL + "mpl.rc('animation', writer='ffmpeg')", "option-store", "animation.writer"),
        (MPL + "plt.rcParams['font.size'] = size", "option-store", "literal"),
        (MPL + "plt.rcParams['savefig.format'] = 'pgf'", "option-store", "savefig.format"),
        ("import seaborn as sns\nsns.set_theme(rc={'ps.useafm': True})", "option-store",
         "ps.useafm"),
        (MPL + "plt.rcParams.update(settings)", "option-store", "literal dict"),
        (MPL + "with mpl.rc_context({'keymap.quit': []}):\n    pass", "option-store",
         "keymap.quit"),
        (MPL + "plt.style.use({'figure.hooks': []})", "option-store", "figure.hooks"),
        (MPL + "plt.style.use(['ggplot', {'text.latex.engine': 'x'}])", "option-store",
         "text.latex.engine"),
        (MPL + "plt.rcParams['no.such'] = 1", "option-store", "not a matplotlib setting"),
        (MPL + "plt.style.library['mine'] = {'figure.hooks': ['m:f']}", "option-store",
         "style"),
        (MPL + "plt.style.library.update(mine={})", "option-store", "style.library"),
        (MPL + "mpl.rc_file('outputs/my.rc')", "option-store", "file"),
    ],
    "string annotations": [
        ("import typing\ndef f(x: \"open('data/a.csv').read()\"):\n    pass\n"
         "typing.get_type_hints(f)", "string-annotation", "call"),
        ("def f() -> 'print(1) or int':\n    pass", "string-annotation", "boolop"),
        ("alias = list['len(df) and int']", "string-annotation", "boolop"),
        ("import typing\nT = typing.TypeVar('T', bound='vars() or object')",
         "string-annotation", "boolop"),
        ("from typing import ForwardRef\nref = ForwardRef('df.to_csv()')", "string-annotation",
         "call"),
        ("import typing\nx: typing.Optional['(lambda: 0)'] = None",
         "string-annotation", "lambda"),
        ("class Box:\n    item: 'dict[str, \"_hidden\"]'", "string-annotation", "_hidden"),
    ],
    "template engines": [
        ("df.style.loader", "template-engine", "template engine"),
        ("from pandas.io.formats.style import Styler\n"
         "Styler.from_custom_template('outputs', 'page.tpl')", "template-engine", "template"),
        ("df.style.template_html_table", "template-engine", "template"),
        ("styler.env.get_template('x')", "template-engine", "template"),
    ],
}

PASSING = {
    "pandas expressions": [
        "df.query(\"price > 3 and region == 'EU'\")",
        "df.query(\"`total bill` > 10\")",
        "df.eval('c = a + b')",
        "df.query('city in @wanted')",
        "df.query('abs(delta) < 0.5 & ratio >= 1')",
        "df.query(\"email == 'ops@example.org'\")",
        "df.eval('total = qty * price\\nhalf = total / 2')",
        "df.query('`unit price` >= @threshold')",
        "df.query('open > close and high < 2 * low')",  # stock columns named like builtins
        SMF + "smf.ols('close ~ open + Q(\"max\")', data=prices)",
        PD + "pd.eval('a + b')",
        "import scipy.spatial\ntree = scipy.spatial.cKDTree(pts)\ntree.query(x, 3)",
    ],
    "formulas": [
        SMF + "smf.ols('tip ~ total_bill + C(day)', data=df)",
        SMF + "smf.ols(\"np.log(y) ~ I(x**2) + center(z) + C(g, Treatment(reference='b'))\","
              " data=df)",
        SMF + "smf.logit('won ~ bs(age, df=4) + standardize(income) + a:b', data=df)",
        SMF + "smf.ols(\"y ~ Q('total bill') + I(x > 3)\", data=df)",
        SMF + "smf.mixedlm('y ~ x', df, groups=df['g'], re_formula='~x')",
        SMF + "smf.ols('y ~ x', data=df, eval_env=-1)",
        SMF + "smf.ols('y ~ C(g, levels=[\"a\", \"b\"]) - 1', data=df)",
    ],
    "format templates": [
        "'{:.2f}'.format(x)",
        "'{0:>{1}}'.format(a, 8)",
        "'{row[name]}: {row[1]}'.format(row=r)",
        "'{!r}'.format(x)",
        "'{:{w}.{p}f}'.format(x, w=8, p=2)",
        "df.style.format('{:.1%}')",
        "df.style.format(lambda v: f'{v:.1f}')",
        "def pct(v):\n    return f'{v:.0%}'\ndf.style.format({'share': pct})",
    ],
    "string dispatch": [
        "df.agg(['mean', 'std'])",
        "df.groupby('g').agg(total=('v', 'sum'), n=('v', 'count'))",
        "import numpy as np\ndf.apply(np.log)",
        "df.apply(lambda r: r.a + r.b, axis=1)",
        "def spread(x):\n    return x.max() - x.min()\ndf.agg(spread)",
        "df.groupby('g')['v'].transform('cumsum')",
        "scaler.fit(X_train)\nX_scaled = scaler.transform(X_test)",
        PD + "pd.pivot_table(df, values='v', index='g', aggfunc='mean')",
        "import numpy as np\nfrom functools import partial\n"
        "df.agg(partial(np.percentile, q=90))",
        PD + "df.groupby('g').agg(mid=pd.NamedAgg(column='v', aggfunc='median'))",
        "for stat in ['min', 'max']:\n    print(stat)\ndf.agg({'a': 'sum', 'b': ['min', 'max']})",
        "df.rolling('7D').apply(integrate.trapz)",
    ],
    "option stores": [
        PD + "pd.set_option('display.max_columns', 50)",
        PD + "pd.set_option('display.float_format', '{:.2f}'.format)",
        PD + "with pd.option_context('display.max_rows', 10, 'display.precision', 3):\n"
             "    print(df)",
        PD + "pd.options.display.max_rows = 20",
        PD + "print(pd.options.display.max_rows)",
        PD + "pd.reset_option('display.max_rows')",
        PD + "pd.set_option('plotting.backend', 'matplotlib')",
        MPL + "plt.rcParams['figure.figsize'] = (8, 4)",
        MPL + "plt.rcParams.update({'font.size': 11, 'axes.grid': True})",
        MPL + "mpl.rc('lines', linewidth=2)",
        "import seaborn as sns\nsns.set_theme(style='whitegrid', rc={'axes.spines.right': False})",
        MPL + "with plt.rc_context({'axes.titlesize': 14}):\n    plt.plot([1, 2])",
        MPL + "size = plt.rcParams['font.size']",
        MPL + "plt.style.use('ggplot')",
        MPL + "plt.style.use(['seaborn-v0_8', {'axes.grid': True}])",
        MPL + "matplotlib.use('Agg')",
        MPL + "print(sorted(plt.style.library['ggplot']))",
        MPL + "plt.rcParams['axes.prop_cycle'] = plt.cycler(color=['r', 'g'])",
    ],
    "string annotations": [
        "import pandas as pd\ndef f(frame: 'pd.DataFrame') -> 'dict[str, list[int]] | None':"
        "\n    pass",
        "import typing\nmode: typing.Literal['fast mode', 'slow'] = 'slow'",
        "import typing\nx: typing.Annotated[int, 'between 0 and 9'] = 3",
        "import typing\nT = typing.TypeVar('T', bound='pd.Series')",
        "col = df['total bill']\nrows = df.loc[df['a'] > 1, ['b', 'c']]",
    ],
    "template engines": [
        "df.style.highlight_max()",
        "import plotly.express as px\nfig = px.bar(df, x='a', y='b')\n"
        "fig.update_layout(template='plotly_white')",
    ],
}

REFUSED_CASES = [pytest.param(code, rule, words, id=f"{group}: {code.splitlines()[-1][:50]}")
                 for group, cases in REFUSED.items() for code, rule, words in cases]
PASSING_CASES = [pytest.param(code, id=f"{group}: {code.splitlines()[-1][:50]}")
                 for group, cases in PASSING.items() for code in cases]


@pytest.mark.parametrize("code, rule, words", REFUSED_CASES)
def test_refused_with_a_message_naming_the_problem(code, rule, words):
    report = validator.validate(code)
    assert not report.allowed, f"allowed:\n{code}"
    matching = [f for f in report.violations if f.rule == rule]
    assert matching, report.summary()
    assert any(words.lower() in f.message.lower() for f in matching), report.summary()
    for finding in report.violations:
        assert finding.line >= 1 and finding.message.endswith("."), finding


@pytest.mark.parametrize("code", PASSING_CASES)
def test_look_alike_passes(code):
    report = validator.validate(code)
    assert report.allowed and not report.violations, report.summary()


def test_the_expression_check_reads_what_pandas_evaluates():
    """Every expression the check passes is one pandas evaluates to the same columns."""
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"total bill": [5, 20], "region": ["EU", "US"], "a": [1, 2]})
    for expr in ("`total bill` > 10", "region in @WANTED", "a > 1 & region == 'US'"):
        assert pandas_expression_problem(expr, assignments=False) is None
        assert len(frame.query(expr)) == 1


def test_a_hidden_span_is_refused_however_pandas_reads_it():
    """pandas reads the backtick inside the literal as a character; the old mask read a
    `span` across the quotes. Either reading is refused now."""
    expr = "region != '`' or @secret.real > 0 or '`' == region"
    assert pandas_expression_problem(expr, assignments=False) is not None


def test_formula_terms_come_from_patsys_parser():
    # ':' and '~' inside a function call stay Python, as patsy reads them
    assert formula_problem("y ~ I(~flag) + a:b") is None
    assert "np.loadtxt" in formula_problem("y ~ x + np.loadtxt(p):z")


def test_option_pattern_keys_are_never_run_as_regular_expressions():
    code = PD + "pd.set_option('(x+x+)+y' + 'z', 1)\npd.set_option('(a|aa)*' * 8 + 'b', 1)"
    started = time.perf_counter()
    report = validator.validate(code)
    assert time.perf_counter() - started < 1.0
    assert not report.allowed


def test_option_refusals_are_high_not_warnings():
    report = validator.validate(MPL + "plt.rcParams['text.usetex'] = True")
    assert report.risk_level.rank >= RiskLevel.HIGH.rank


def test_without_patsy_formulas_are_refused_not_guessed(monkeypatch):
    monkeypatch.setattr(strings, "parse_formula", None)
    assert "patsy is not installed" in formula_problem("y ~ x")
