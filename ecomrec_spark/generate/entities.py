"""Customers, products, sellers and places as pure functions of their index.

Nothing here is joined: every attribute of product ``(k, j)`` (category ``k``,
slot ``j`` inside the category), seller ``s`` or customer ``c`` is computed from
the hashed index wherever it is needed, so order lines carry product prices and
seller cities without a shuffle.

Product structure: the slots of category ``k`` are ordered by popularity; slot
``j`` has price tier ``t = j mod 3`` (low/mid/high, a log-price offset from the
category median) and popularity rank ``j div 3`` inside its tier.  A buyer draws
a rank ``r`` with ``P(r) ~ 1/(r+1)`` (Zipf), so popularity follows a power law.
"""

from __future__ import annotations

import math

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from ecomrec_spark.generate.calendar import idiv
from ecomrec_spark.generate.hashing import (
    at,
    bits_uniform,
    choice,
    hash64,
    hex_id,
    lit_array,
    normal,
    randint,
    uniform,
    zipf_rank,
)
from ecomrec_spark.generate.plan import Plan
from ecomrec_spark.generate.tables import (
    CATEGORIES,
    CATEGORY_INDEX,
    CITIES,
    N_CATEGORIES,
    PRICE_LEVEL_SHARES,
    TIER_LOG_OFFSET,
    category_id,
)
from ecomrec_spark.generate.writer import ZIP_QUOTE_SHARE, csv_line, maybe_quoted

CAT_WEIGHTS = [c.weight for c in CATEGORIES]
COMPLEMENT_SHARE = 0.35  # share of the catalogue that has a complement product
PREF_CATEGORY_SHARE = 0.8  # a line's category is one of the buyer's preferred ones
PREF_TIER_SHARE = 0.6  # a line's price tier is the buyer's price level
SECOND_PREF_SHARE = 0.5  # customers with a second preferred category
EVENT_CODE_MISSING = 0.2
BRAND_MISSING = 0.15


# ----------------------------------------------------------------- categories
def cat_pt(k: Column) -> Column:
    """Portuguese category name of category index ``k``."""
    return at(lit_array([c.pt for c in CATEGORIES]), k)


def cat_en(k: Column) -> Column:
    """English category name."""
    return at(lit_array([c.en for c in CATEGORIES]), k)


def translation_text() -> str:
    """The body of product_category_name_translation.csv (header included, no BOM)."""
    rows = ["product_category_name,product_category_name_english"] + [f"{c.pt},{c.en}" for c in CATEGORIES]
    return "\n".join(rows) + "\n"


# ------------------------------------------------------------------- products
def slots_in_tier(plan: Plan, k: Column, t: Column) -> Column:
    """Number of product slots of category ``k`` in price tier ``t`` (>= 1)."""
    return idiv(at(lit_array(plan.cat_count, "long"), k) - t + F.lit(2), 3)


def product_id(plan: Plan, k: Column, j: Column) -> Column:
    """The 32-hex product_id of product ``(k, j)``."""
    return hex_id(plan.seed, "product", k, j)


def product_base_cents(plan: Plan, k: Column, j: Column) -> Column:
    """Base price in cents: category median x tier offset x lognormal noise."""
    med = at(lit_array([c.median_price * 100.0 for c in CATEGORIES], "double"), k)
    off = at(lit_array(TIER_LOG_OFFSET, "double"), F.pmod(j, F.lit(3)))
    raw = med * F.exp(off + F.lit(0.3) * normal(plan.seed, "p:price", k, j))
    return F.least(F.greatest(F.round(raw), F.lit(350.0)), F.lit(699900.0)).cast("long")


def product_weight_g(plan: Plan, k: Column, j: Column) -> Column:
    """Product weight in grams (category median x lognormal)."""
    med = at(lit_array([c.median_weight_g for c in CATEGORIES], "double"), k)
    raw = med * F.exp(F.lit(0.7) * normal(plan.seed, "p:weight", k, j))
    return F.least(F.greatest(F.round(raw), F.lit(50.0)), F.lit(30000.0)).cast("long")


def product_seller(plan: Plan, k: Column, j: Column) -> Column:
    """The seller of a product: sellers specialise by category; a few sell a lot."""
    s_n = plan.n_sellers
    r = F.floor(F.lit(float(s_n)) * F.pow(uniform(plan.seed, "p:seller", k, j), F.lit(1.8)))
    step = max(1, s_n // N_CATEGORIES)
    return F.pmod(r.cast("long") + k.cast("long") * F.lit(step), F.lit(s_n)).cast("long")


def has_complement(plan: Plan, k: Column, j: Column) -> Column:
    """Whether product ``(k, j)`` has a complement (35% of the catalogue)."""
    return uniform(plan.seed, "p:hascomp", k, j) < F.lit(COMPLEMENT_SHARE)


def complement_category(k: Column) -> Column:
    """The complementary category of category ``k``."""
    return at(lit_array([CATEGORY_INDEX[c.complement] for c in CATEGORIES], "int"), k)


def complement_slot(plan: Plan, k: Column, j: Column, k2: Column) -> Column:
    """Slot of the complement of product ``(k, j)`` in category ``k2`` (a column holding
    :func:`complement_category` of ``k``): a popular item in the same price tier."""
    r = zipf_rank(slots_in_tier(plan, k2, F.pmod(j, F.lit(3))), uniform(plan.seed, "p:comp", k, j))
    return (r * F.lit(3) + F.pmod(j, F.lit(3))).cast("long")


def pick_category(plan: Plan, salt: str, o: Column, i: Column, pref1: Column, pref2: Column) -> Column:
    """Category of a product a buyer picks: a preferred one with p=0.8, else by category share."""
    seed = plan.seed
    pref = F.when((pref2 >= 0) & (uniform(seed, salt + ":pref", o, i) < F.lit(0.35)), pref2).otherwise(pref1)
    anyk = choice(CAT_WEIGHTS, uniform(seed, salt + ":c1", o, i))
    return F.when(uniform(seed, salt + ":cat", o, i) < F.lit(PREF_CATEGORY_SHARE), pref).otherwise(anyk).cast("int")


def pick_tier(plan: Plan, salt: str, o: Column, i: Column, level: Column) -> Column:
    """Price tier of the pick: the buyer's price level with p=0.6, else one of the other two."""
    ut = uniform(plan.seed, salt + ":tier", o, i)
    shift = F.when(ut < F.lit(PREF_TIER_SHARE), F.lit(0)).when(
        ut < F.lit(PREF_TIER_SHARE + (1 - PREF_TIER_SHARE) / 2), F.lit(1)).otherwise(F.lit(2))
    return F.pmod(level + shift, F.lit(3)).cast("long")


def pick_slot(plan: Plan, salt: str, o: Column, i: Column, k: Column, t: Column) -> Column:
    """Slot ``j`` of the pick: a Zipf rank by popularity inside (category ``k``, tier ``t``)."""
    r = zipf_rank(slots_in_tier(plan, k, t), uniform(plan.seed, salt + ":rank", o, i))
    return (r * F.lit(3) + t).cast("long")


# --------------------------------------------------------------------- places
def city_name(city: Column) -> Column:
    """Lower-case city name of city index ``city``."""
    return at(lit_array([c.name for c in CITIES]), city)


def city_state(city: Column) -> Column:
    """Two-letter state (UF) of city index ``city``."""
    return at(lit_array([c.state for c in CITIES]), city)


def zip_prefix(plan: Plan, city: Column, u: Column) -> Column:
    """A 5-digit zip prefix (string) of ``city`` from its zip universe."""
    n = at(lit_array(plan.zip_count, "long"), city)
    j = F.least(F.floor(u * n), n - F.lit(1))
    z = at(lit_array([c.zip_lo for c in CITIES], "long"), city) + j * at(lit_array(plan.zip_stride, "long"), city)
    return F.lpad(z.cast("long").cast("string"), 5, "0")


def distance_norm(city_a: Column, city_b: Column) -> Column:
    """Distance between two city centres (columns) in units of 2,500 km, capped at 1.5."""
    lat = lit_array([c.lat for c in CITIES], "double")
    lng = lit_array([c.lng for c in CITIES], "double")
    la, lb = at(lat, city_a), at(lat, city_b)
    dlng = (at(lng, city_a) - at(lng, city_b)) * F.cos(F.radians((la + lb) / F.lit(2.0)))
    km = F.lit(111.2) * F.sqrt((la - lb) * (la - lb) + dlng * dlng)
    return F.least(km / F.lit(2500.0), F.lit(1.5))


# ------------------------------------------------------------------ customers
def customer_unique_id(plan: Plan, c: Column) -> Column:
    """The 32-hex customer_unique_id of customer ``c``."""
    return hex_id(plan.seed, "customer_unique", c)


def customer_city(plan: Plan, c: Column) -> Column:
    """City index of customer ``c`` (by customer share)."""
    return choice([x.customer_weight for x in CITIES], uniform(plan.seed, "c:city", c))


def customer_zip(plan: Plan, c: Column, city: Column) -> Column:
    """Zip prefix of customer ``c`` in its city."""
    return zip_prefix(plan, city, uniform(plan.seed, "c:zip", c))


def customer_pref1(plan: Plan, c: Column) -> Column:
    """First preferred category of customer ``c`` (by category share)."""
    return choice(CAT_WEIGHTS, uniform(plan.seed, "c:pref1", c))


def customer_pref2(plan: Plan, c: Column, pref1: Column) -> Column:
    """A second preferred category (different from the first) or -1."""
    raw = choice(CAT_WEIGHTS, uniform(plan.seed, "c:pref2", c))
    other = F.pmod(pref1 + F.lit(1) + randint(plan.seed, "c:pref2c", N_CATEGORIES - 1, c), F.lit(N_CATEGORIES))
    return (F.when(uniform(plan.seed, "c:has2", c) >= F.lit(SECOND_PREF_SHARE), F.lit(-1))
            .when(raw == pref1, other).otherwise(raw)).cast("int")


def customer_level(plan: Plan, c: Column) -> Column:
    """Latent price level 0/1/2 (low/mid/high)."""
    return choice(PRICE_LEVEL_SHARES, uniform(plan.seed, "c:level", c))


def customer_grumpiness(plan: Plan, c: Column) -> Column:
    """Latent review harshness of customer ``c`` ~ N(0, 1)."""
    return normal(plan.seed, "c:grump", c)


# -------------------------------------------------------------------- sellers
def seller_id(plan: Plan, s: Column) -> Column:
    """The 32-hex seller_id of seller ``s``."""
    return hex_id(plan.seed, "seller", s)


def seller_city(plan: Plan, s: Column) -> Column:
    """City index of seller ``s`` (by seller share: SP ~60%)."""
    return choice([x.seller_weight for x in CITIES], uniform(plan.seed, "s:city", s))


def seller_quality(plan: Plan, s: Column) -> Column:
    """Latent seller quality ~ N(0, 1); low quality means late deliveries and lower scores."""
    return normal(plan.seed, "s:quality", s)


# ------------------------------------------------------------ entity files
def _clip(x: Column, lo: float, hi: float) -> Column:
    return F.least(F.greatest(x, F.lit(float(lo))), F.lit(float(hi)))


def _product_slots(spark: SparkSession, plan: Plan) -> DataFrame:
    parts = max(1, min(N_CATEGORIES, plan.partitions))
    k = F.col("id").cast("int")
    last = at(lit_array(plan.cat_count, "long"), k) - F.lit(1)
    return spark.range(0, N_CATEGORIES, 1, parts).select(
        k.alias("k"), F.explode(F.sequence(F.lit(0).cast("long"), last)).alias("j"))


def products_lines(spark: SparkSession, plan: Plan) -> DataFrame:
    """olist_products_dataset.csv lines, sorted by product_id."""
    seed = plan.seed
    k, j = F.col("k"), F.col("j")
    pid = product_id(plan, k, j)
    w = product_weight_g(plan, k, j)
    cube = F.pow(w.cast("double"), F.lit(1.0 / 3.0))
    length = _clip(F.round(cube * F.lit(1.2) + F.lit(30.0) * uniform(seed, "p:len", k, j)), 7, 105)
    height = _clip(F.round(cube * F.lit(0.5) * (F.lit(0.3) + uniform(seed, "p:hgt", k, j))), 2, 105)
    width = _clip(F.round(F.lit(8.0) + cube * F.lit(0.8) * uniform(seed, "p:wid", k, j)), 6, 118)
    name_len = F.lit(20) + randint(seed, "p:name", 44, k, j)
    desc = _clip(F.round(F.exp(F.lit(math.log(600.0)) + F.lit(0.7) * normal(seed, "p:desc", k, j))), 4, 3992)
    photos = _clip(F.lit(1.0) + F.floor(-F.log(F.lit(1.0) - uniform(seed, "p:photos", k, j)) * F.lit(0.9)), 1, 20)
    qh = hash64(seed, "q:product", k, j)
    line = csv_line(maybe_quoted(pid, bits_uniform(qh, 0)), cat_pt(k), name_len.cast("string"),
                    desc.cast("long").cast("string"), photos.cast("long").cast("string"), w.cast("string"),
                    length.cast("long").cast("string"), height.cast("long").cast("string"),
                    width.cast("long").cast("string"))
    return _product_slots(spark, plan).select(pid.alias("key"), line.alias("value")).orderBy("key").select("value")


def complements_lines(spark: SparkSession, plan: Plan) -> DataFrame:
    """_truth/complements.csv lines (product_id,complement_product_id), sorted by product_id."""
    k, j = F.col("k"), F.col("j")
    df = _product_slots(spark, plan).where(has_complement(plan, k, j)).withColumn("k2", complement_category(k))
    df = df.withColumn("j2", complement_slot(plan, k, j, F.col("k2")))
    pid = product_id(plan, k, j)
    return (df.select(pid.alias("key"), product_id(plan, F.col("k2"), F.col("j2")).alias("comp"))
            .select("key", F.concat(F.col("key"), F.lit(","), F.col("comp")).alias("value"))
            .orderBy("key").select("value"))


def sellers_lines(spark: SparkSession, plan: Plan) -> DataFrame:
    """olist_sellers_dataset.csv lines, sorted by seller_id."""
    s = F.col("id")
    sid = seller_id(plan, s)
    city = seller_city(plan, s)
    qh = hash64(plan.seed, "q:seller", s)
    line = csv_line(maybe_quoted(sid, bits_uniform(qh, 0)),
                    maybe_quoted(zip_prefix(plan, city, uniform(plan.seed, "s:zip", s)), bits_uniform(qh, 10),
                                 ZIP_QUOTE_SHARE),
                    city_name(city), city_state(city))
    parts = max(1, min(plan.partitions, plan.n_sellers))
    rows = spark.range(0, plan.n_sellers, 1, parts).select(sid.alias("key"), line.alias("value"))
    return rows.orderBy("key").select("value")


def geolocation_lines(spark: SparkSession, plan: Plan) -> DataFrame:
    """olist_geolocation_dataset.csv lines: 1-5 points around each zip prefix of the
    zip universe, ordered by zip prefix (cities are sorted by zip range)."""
    seed = plan.seed
    city = F.col("id").cast("int")
    last = at(lit_array(plan.zip_count, "long"), city) - F.lit(1)
    zips = spark.range(0, len(CITIES), 1, 1).select(
        city.alias("city"), F.explode(F.sequence(F.lit(0).cast("long"), last)).alias("zj"))
    cc, zj = F.col("city"), F.col("zj")
    n_rows = F.lit(1) + randint(seed, "g:rows", 5, cc, zj)
    pts = zips.select(cc, zj, F.explode(F.sequence(F.lit(1).cast("long"), n_rows)).alias("r"))
    r = F.col("r")
    z = at(lit_array([c.zip_lo for c in CITIES], "long"), cc) + zj * at(lit_array(plan.zip_stride, "long"), cc)
    lat = (at(lit_array([c.lat for c in CITIES], "double"), cc) + F.lit(0.12) * normal(seed, "g:zlat", cc, zj)
           + F.lit(0.004) * normal(seed, "g:lat", cc, zj, r))
    lng = (at(lit_array([c.lng for c in CITIES], "double"), cc) + F.lit(0.12) * normal(seed, "g:zlng", cc, zj)
           + F.lit(0.004) * normal(seed, "g:lng", cc, zj, r))
    zs = F.lpad(z.cast("string"), 5, "0")
    line = csv_line(maybe_quoted(zs, uniform(seed, "q:geo", cc, zj, r), ZIP_QUOTE_SHARE),
                    F.format_string("%.14f", lat), F.format_string("%.14f", lng), city_name(cc), city_state(cc))
    return pts.select(line.alias("value"))


def customer_prefs(spark: SparkSession, plan: Plan) -> DataFrame:
    """_truth/customer_prefs: the latent preferences of every customer_unique_id (``_i``: row index)."""
    c = F.col("id")
    p1 = customer_pref1(plan, c)
    df = spark.range(0, plan.n_customers, 1, max(1, min(plan.partitions, plan.n_customers))).select(
        c.alias("c"), p1.alias("p1"))
    c, p1 = F.col("c"), F.col("p1")
    p2 = customer_pref2(plan, c, p1)
    city = customer_city(plan, c)
    return df.select(
        c.alias("_i"),
        customer_unique_id(plan, c).alias("customer_unique_id"),
        cat_pt(p1).alias("preferred_category_1"),
        F.when(p2 >= 0, cat_pt(F.greatest(p2, F.lit(0)))).alias("preferred_category_2"),
        at(lit_array(["low", "mid", "high"]), customer_level(plan, c)).alias("price_level"),
        customer_grumpiness(plan, c).alias("grumpiness"),
        city_state(city).alias("state"),
        city_name(city).alias("city"),
    )


def event_category_id(k: Column) -> Column:
    """REES46-style 19-digit category_id of category ``k``."""
    return at(lit_array([category_id(c) for c in CATEGORIES]), k)


def event_category_code(plan: Plan, k: Column, j: Column) -> Column:
    """REES46-style dotted category_code, empty for a share of the products."""
    code = at(lit_array([c.code for c in CATEGORIES]), k)
    return F.when(uniform(plan.seed, "p:nocode", k, j) < F.lit(EVENT_CODE_MISSING), F.lit("")).otherwise(code)


def event_brand(plan: Plan, k: Column, j: Column) -> Column:
    """A brand of the product's category, empty for a share of the products."""
    brands = [b for c in CATEGORIES for b in c.brands]
    per = len(CATEGORIES[0].brands)
    b = at(lit_array(brands), k * F.lit(per) + randint(plan.seed, "p:brand", per, k, j))
    return F.when(uniform(plan.seed, "p:nobrand", k, j) < F.lit(BRAND_MISSING), F.lit("")).otherwise(b)

