"""Butcher tableaux of plateletpd's Runge-Kutta methods, owned by the project, each with
its published source.

A tableau is data: the integrator (:mod:`plateletpd.numerics.integrator`) reads these arrays
as compile-time constants of every kernel, and the explicit methods without hand-written
loops (:data:`GENERATED`) run through one generic segment driven by them. Adding an explicit
method is one :class:`ButcherTableau` here, appended to :data:`GENERATED`, plus its solver
class (two lines, :class:`plateletpd.numerics.solvers.ExplicitRungeKutta`) and a test
(``tests/test_tableaux.py`` checks every tableau's order conditions).

* :data:`DORMAND_PRINCE_5`: Dormand and Prince, "A family of embedded Runge-Kutta
  formulae", J Comput Appl Math 1980;6:19-26 (table 2, RK5(4)7M); dense output from Hairer,
  Norsett and Wanner, Solving Ordinary Differential Equations I, 2nd ed., Springer 1993,
  section II.6 (their code dopri5, contd5).
* :data:`DOP853`: Hairer, Norsett and Wanner, Solving ODEs I, section II.10 (Dormand-Prince
  8(5,3)), coefficients as printed in their code dop853.f (the same decimal values scipy
  ships in ``scipy.integrate._ivp.dop853_coefficients``; a test checks agreement to the
  last bit).
* :data:`ROSENBROCK_23`: Shampine and Reichelt, "The MATLAB ODE suite", SIAM J Sci Comput
  1997;18:1-22, section 3.1 (ode23s).
* :data:`BOGACKI_SHAMPINE_3`: Bogacki and Shampine, "A 3(2) pair of Runge-Kutta formulas",
  Appl Math Lett 1989;2:321-325.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def _frozen(values) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class ButcherTableau:
    """An explicit embedded Runge-Kutta pair.

    ``a`` (s x s, strictly lower triangular), ``b`` (the propagated solution, order
    ``order``), ``c`` (stage times, ``c[i] = sum(a[i])``) and ``error``: the weights of the
    local error estimate ``h * sum(error[j] * k[j])``, i.e. ``b - b_embedded`` where the
    embedded solution has order ``error_order``. The step-size exponent is
    ``1 / (error_order + 1)``. ``first_same_as_last``: the last stage is evaluated at the
    new solution (``a[-1] == b``, ``c[-1] == 1``), so an accepted step's last derivative is
    the next step's first."""

    name: str
    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    error: np.ndarray
    order: int
    error_order: int
    source: str

    def __post_init__(self):
        for name in ("a", "b", "c", "error"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        s = self.b.size
        if self.a.shape != (s, s) or self.c.shape != (s,) or self.error.shape != (s,):
            raise ValueError(f"{self.name}: a must be {s} x {s}, c and error {s} long")
        if np.any(np.triu(self.a) != 0.0):
            raise ValueError(f"{self.name}: a is not strictly lower triangular (not explicit)")

    @property
    def stages(self) -> int:
        return self.b.size

    @property
    def first_same_as_last(self) -> bool:
        return bool(np.array_equal(self.a[-1], self.b) and self.c[-1] == 1.0)

    @property
    def embedded(self) -> np.ndarray:
        """Weights of the embedded (error-estimating) solution."""
        return self.b - self.error


#: Dormand-Prince 5(4) (RK5(4)7M, first same as last): stage 7 is the new solution.
DORMAND_PRINCE_5 = ButcherTableau(
    name="dopri5",
    c=[0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0],
    a=[[0.0] * 7,
       [1.0 / 5.0] + [0.0] * 6,
       [3.0 / 40.0, 9.0 / 40.0] + [0.0] * 5,
       [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0] + [0.0] * 4,
       [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0, 0.0],
       [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0,
        0.0, 0.0],
       [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0,
        0.0]],
    b=[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    error=[71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0,
           22.0 / 525.0, -1.0 / 40.0],
    order=5, error_order=4,
    source="Dormand & Prince, J Comput Appl Math 1980;6:19-26, table 2 (RK5(4)7M)")

#: DOPRI5's 4th-order dense output (Hairer's dopri5 contd5: d1, d3, d4, d5, d6, d7).
DORMAND_PRINCE_5_DENSE = _frozen([
    -12715105075.0 / 11282082432.0, 0.0, 87487479700.0 / 32700410799.0,
    -10690763975.0 / 1880347072.0, 701980252875.0 / 199316789632.0,
    -1453857185.0 / 822651844.0, 69997945.0 / 29380423.0])


@dataclass(frozen=True, eq=False)
class Dop853Coefficients:
    """DOP853's arrays, named as in Hairer's code: ``A`` (16 x 16: stages 1-12, row 12 the
    8th-order weights ``B``, rows 13-15 the dense output's extra stages), ``C`` (16),
    ``E5`` and ``E3`` (13: the 5th- and 3rd-order error estimates' weights), ``D`` (4 x 16:
    the 7th-order dense output's coefficients)."""

    A: np.ndarray
    B: np.ndarray
    C: np.ndarray
    E3: np.ndarray
    E5: np.ndarray
    D: np.ndarray
    source: str

    def tableau(self, estimate: str = "E5") -> ButcherTableau:
        """The 12-stage pair with the 5th-order (``E5``) or 3rd-order (``E3``) estimate."""
        return ButcherTableau(name=f"dop853 ({estimate})", a=self.A[:12, :12], b=self.B,
                              c=self.C[:12], error=getattr(self, estimate)[:12], order=8,
                              error_order=5 if estimate == "E5" else 3, source=self.source)


_DOP853_C = np.array([
    0.0,
    0.526001519587677318785587544488e-01,
    0.789002279381515978178381316732e-01,
    0.118350341907227396726757197510,
    0.281649658092772603273242802490,
    0.333333333333333333333333333333,
    0.25,
    0.307692307692307692307692307692,
    0.651282051282051282051282051282,
    0.6,
    0.857142857142857142857142857142,
    1.0,
    1.0,
    0.1,
    0.2,
    0.777777777777777777777777777778,
])
# stage coefficients (row, column, value); rows 12 (= the 8th-order weights) to 15
_DOP853_A_ENTRIES = (
    (1, 0, 5.26001519587677318785587544488e-2),
    (2, 0, 1.97250569845378994544595329183e-2),
    (2, 1, 5.91751709536136983633785987549e-2),
    (3, 0, 2.95875854768068491816892993775e-2),
    (3, 2, 8.87627564304205475450678981324e-2),
    (4, 0, 2.41365134159266685502369798665e-1),
    (4, 2, -8.84549479328286085344864962717e-1),
    (4, 3, 9.24834003261792003115737966543e-1),
    (5, 0, 3.7037037037037037037037037037e-2),
    (5, 3, 1.70828608729473871279604482173e-1),
    (5, 4, 1.25467687566822425016691814123e-1),
    (6, 0, 3.7109375e-2),
    (6, 3, 1.70252211019544039314978060272e-1),
    (6, 4, 6.02165389804559606850219397283e-2),
    (6, 5, -1.7578125e-2),
    (7, 0, 3.70920001185047927108779319836e-2),
    (7, 3, 1.70383925712239993810214054705e-1),
    (7, 4, 1.07262030446373284651809199168e-1),
    (7, 5, -1.53194377486244017527936158236e-2),
    (7, 6, 8.27378916381402288758473766002e-3),
    (8, 0, 6.24110958716075717114429577812e-1),
    (8, 3, -3.36089262944694129406857109825),
    (8, 4, -8.68219346841726006818189891453e-1),
    (8, 5, 2.75920996994467083049415600797e1),
    (8, 6, 2.01540675504778934086186788979e1),
    (8, 7, -4.34898841810699588477366255144e1),
    (9, 0, 4.77662536438264365890433908527e-1),
    (9, 3, -2.48811461997166764192642586468),
    (9, 4, -5.90290826836842996371446475743e-1),
    (9, 5, 2.12300514481811942347288949897e1),
    (9, 6, 1.52792336328824235832596922938e1),
    (9, 7, -3.32882109689848629194453265587e1),
    (9, 8, -2.03312017085086261358222928593e-2),
    (10, 0, -9.3714243008598732571704021658e-1),
    (10, 3, 5.18637242884406370830023853209),
    (10, 4, 1.09143734899672957818500254654),
    (10, 5, -8.14978701074692612513997267357),
    (10, 6, -1.85200656599969598641566180701e1),
    (10, 7, 2.27394870993505042818970056734e1),
    (10, 8, 2.49360555267965238987089396762),
    (10, 9, -3.0467644718982195003823669022),
    (11, 0, 2.27331014751653820792359768449),
    (11, 3, -1.05344954667372501984066689879e1),
    (11, 4, -2.00087205822486249909675718444),
    (11, 5, -1.79589318631187989172765950534e1),
    (11, 6, 2.79488845294199600508499808837e1),
    (11, 7, -2.85899827713502369474065508674),
    (11, 8, -8.87285693353062954433549289258),
    (11, 9, 1.23605671757943030647266201528e1),
    (11, 10, 6.43392746015763530355970484046e-1),
    (12, 0, 5.42937341165687622380535766363e-2),
    (12, 5, 4.45031289275240888144113950566),
    (12, 6, 1.89151789931450038304281599044),
    (12, 7, -5.8012039600105847814672114227),
    (12, 8, 3.1116436695781989440891606237e-1),
    (12, 9, -1.52160949662516078556178806805e-1),
    (12, 10, 2.01365400804030348374776537501e-1),
    (12, 11, 4.47106157277725905176885569043e-2),
    (13, 0, 5.61675022830479523392909219681e-2),
    (13, 6, 2.53500210216624811088794765333e-1),
    (13, 7, -2.46239037470802489917441475441e-1),
    (13, 8, -1.24191423263816360469010140626e-1),
    (13, 9, 1.5329179827876569731206322685e-1),
    (13, 10, 8.20105229563468988491666602057e-3),
    (13, 11, 7.56789766054569976138603589584e-3),
    (13, 12, -8.298e-3),
    (14, 0, 3.18346481635021405060768473261e-2),
    (14, 5, 2.83009096723667755288322961402e-2),
    (14, 6, 5.35419883074385676223797384372e-2),
    (14, 7, -5.49237485713909884646569340306e-2),
    (14, 10, -1.08347328697249322858509316994e-4),
    (14, 11, 3.82571090835658412954920192323e-4),
    (14, 12, -3.40465008687404560802977114492e-4),
    (14, 13, 1.41312443674632500278074618366e-1),
    (15, 0, -4.28896301583791923408573538692e-1),
    (15, 5, -4.69762141536116384314449447206),
    (15, 6, 7.68342119606259904184240953878),
    (15, 7, 4.06898981839711007970213554331),
    (15, 8, 3.56727187455281109270669543021e-1),
    (15, 12, -1.39902416515901462129418009734e-3),
    (15, 13, 2.9475147891527723389556272149),
    (15, 14, -9.15095847217987001081870187138),
)
_DOP853_E5_ENTRIES = (
    (0, 0.1312004499419488073250102996e-1),
    (5, -0.1225156446376204440720569753e+1),
    (6, -0.4957589496572501915214079952),
    (7, 0.1664377182454986536961530415e+1),
    (8, -0.3503288487499736816886487290),
    (9, 0.3341791187130174790297318841),
    (10, 0.8192320648511571246570742613e-1),
    (11, -0.2235530786388629525884427845e-1),
)
_DOP853_D_ENTRIES = (
    (0, 0, -0.84289382761090128651353491142e+1),
    (0, 5, 0.56671495351937776962531783590),
    (0, 6, -0.30689499459498916912797304727e+1),
    (0, 7, 0.23846676565120698287728149680e+1),
    (0, 8, 0.21170345824450282767155149946e+1),
    (0, 9, -0.87139158377797299206789907490),
    (0, 10, 0.22404374302607882758541771650e+1),
    (0, 11, 0.63157877876946881815570249290),
    (0, 12, -0.88990336451333310820698117400e-1),
    (0, 13, 0.18148505520854727256656404962e+2),
    (0, 14, -0.91946323924783554000451984436e+1),
    (0, 15, -0.44360363875948939664310572000e+1),
    (1, 0, 0.10427508642579134603413151009e+2),
    (1, 5, 0.24228349177525818288430175319e+3),
    (1, 6, 0.16520045171727028198505394887e+3),
    (1, 7, -0.37454675472269020279518312152e+3),
    (1, 8, -0.22113666853125306036270938578e+2),
    (1, 9, 0.77334326684722638389603898808e+1),
    (1, 10, -0.30674084731089398182061213626e+2),
    (1, 11, -0.93321305264302278729567221706e+1),
    (1, 12, 0.15697238121770843886131091075e+2),
    (1, 13, -0.31139403219565177677282850411e+2),
    (1, 14, -0.93529243588444783865713862664e+1),
    (1, 15, 0.35816841486394083752465898540e+2),
    (2, 0, 0.19985053242002433820987653617e+2),
    (2, 5, -0.38703730874935176555105901742e+3),
    (2, 6, -0.18917813819516756882830838328e+3),
    (2, 7, 0.52780815920542364900561016686e+3),
    (2, 8, -0.11573902539959630126141871134e+2),
    (2, 9, 0.68812326946963000169666922661e+1),
    (2, 10, -0.10006050966910838403183860980e+1),
    (2, 11, 0.77771377980534432092869265740),
    (2, 12, -0.27782057523535084065932004339e+1),
    (2, 13, -0.60196695231264120758267380846e+2),
    (2, 14, 0.84320405506677161018159903784e+2),
    (2, 15, 0.11992291136182789328035130030e+2),
    (3, 0, -0.25693933462703749003312586129e+2),
    (3, 5, -0.15418974869023643374053993627e+3),
    (3, 6, -0.23152937917604549567536039109e+3),
    (3, 7, 0.35763911791061412378285349910e+3),
    (3, 8, 0.93405324183624310003907691704e+2),
    (3, 9, -0.37458323136451633156875139351e+2),
    (3, 10, 0.10409964950896230045147246184e+3),
    (3, 11, 0.29840293426660503123344363579e+2),
    (3, 12, -0.43533456590011143754432175058e+2),
    (3, 13, 0.96324553959188282948394950600e+2),
    (3, 14, -0.39177261675615439165231486172e+2),
    (3, 15, -0.14972683625798562581422125276e+3),
)


def _dop853() -> Dop853Coefficients:
    a = np.zeros((16, 16))
    for row, column, value in _DOP853_A_ENTRIES:
        a[row, column] = value
    b = a[12, :12].copy()
    e3 = np.zeros(13)  # b minus Hairer's 3rd-order weights bhh1, bhh2, bhh3
    e3[:-1] = b
    e3[0] -= 0.244094488188976377952755905512
    e3[8] -= 0.733846688281611857341361741547
    e3[11] -= 0.220588235294117647058823529412e-1
    e5 = np.zeros(13)
    for index, value in _DOP853_E5_ENTRIES:
        e5[index] = value
    d = np.zeros((4, 16))
    for row, column, value in _DOP853_D_ENTRIES:
        d[row, column] = value
    return Dop853Coefficients(
        A=_frozen(a), B=_frozen(b), C=_frozen(_DOP853_C), E3=_frozen(e3), E5=_frozen(e5),
        D=_frozen(d), source="Hairer, Norsett & Wanner, Solving ODEs I, 2nd ed. 1993, "
                             "section II.10; coefficients of their code dop853.f")


DOP853 = _dop853()


@dataclass(frozen=True)
class RosenbrockCoefficients:
    """The Rosenbrock 2(3) pair's two constants: ``d = 1 / (2 + sqrt 2)`` (the diagonal,
    L-stability) and ``e32 = 6 + sqrt 2`` (the 3rd-order error stage)."""

    d: float
    e32: float
    source: str


ROSENBROCK_23 = RosenbrockCoefficients(
    d=1.0 / (2.0 + math.sqrt(2.0)), e32=6.0 + math.sqrt(2.0),
    source="Shampine & Reichelt, SIAM J Sci Comput 1997;18:1-22, section 3.1 (ode23s)")

#: Bogacki-Shampine 3(2), first same as last: stage 4 is the new solution.
BOGACKI_SHAMPINE_3 = ButcherTableau(
    name="bs3",
    c=[0.0, 0.5, 0.75, 1.0],
    a=[[0.0, 0.0, 0.0, 0.0],
       [0.5, 0.0, 0.0, 0.0],
       [0.0, 0.75, 0.0, 0.0],
       [2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0]],
    b=[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    # b minus the 2nd-order weights (7/24, 1/4, 1/3, 1/8)
    error=[2.0 / 9.0 - 7.0 / 24.0, 1.0 / 3.0 - 0.25, 4.0 / 9.0 - 1.0 / 3.0, -0.125],
    order=3, error_order=2,
    source="Bogacki & Shampine, Appl Math Lett 1989;2:321-325")

#: Explicit methods run by the generic tableau-driven segment, in method-code order (the
#: kernel's code of ``GENERATED[i]`` is ``FIRST_GENERATED + i``). DOPRI5 and DOP853 have
#: hand-tuned segments (PI step control, their own dense output) reading the arrays above.
GENERATED = (BOGACKI_SHAMPINE_3,)

#: Largest stage count :data:`GENERATED` may use (the kernel's per-subject work rows).
MAX_GENERATED_STAGES = 24


def packed(tableaux=GENERATED):
    """The generated methods' arrays stacked, zero-padded to the largest stage count:
    (a, b, c, error, stages, order, error exponent, first same as last), for the kernel."""
    s = max(t.stages for t in tableaux)
    if s > MAX_GENERATED_STAGES:
        raise ValueError(f"a generated method has {s} stages; at most {MAX_GENERATED_STAGES}")
    a = np.zeros((len(tableaux), s, s))
    b, c, error = (np.zeros((len(tableaux), s)) for _ in range(3))
    for i, t in enumerate(tableaux):
        n = t.stages
        a[i, :n, :n], b[i, :n], c[i, :n], error[i, :n] = t.a, t.b, t.c, t.error
    stages = np.array([t.stages for t in tableaux], dtype=np.int64)
    order = np.array([t.order for t in tableaux], dtype=np.int64)
    exponent = np.array([1.0 / (t.error_order + 1) for t in tableaux])
    fsal = np.array([t.first_same_as_last for t in tableaux])
    return a, b, c, error, stages, order, exponent, fsal


def source_digest() -> str:
    """Digest of this file: part of every kernel's cache key (the kernel reads these arrays
    as constants, so changing one must recompile)."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
