"""Small static lookup tables of the generator (driver side, a few dozen rows each).

Categories are 20 real Olist category names with their real English
translations; cities cover all 27 Brazilian states with approximate centre
coordinates and real zip-prefix ranges.  Weights are shares, not counts.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple


class Category(NamedTuple):
    """One product category and its latent parameters."""

    pt: str  # Olist product_category_name
    en: str  # product_category_name_english (as in the real translation file)
    weight: float  # share of order lines
    median_price: float  # BRL, median product base price
    median_weight_g: float
    code: str  # REES46-style dotted category_code
    complement: str  # pt name of the complementary category
    score_effect: float  # shift of the review-score latent (positive = happier)
    brands: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("cama_mesa_banho", "bed_bath_table", 11.0, 80, 1500, "home.bed_bath_table", "moveis_decoracao", -0.10,
             ("santista", "buddemeyer", "teka")),
    Category("beleza_saude", "health_beauty", 9.5, 90, 400, "beauty.health_beauty", "perfumaria", 0.10,
             ("natura", "boticario", "nivea")),
    Category("esporte_lazer", "sports_leisure", 8.5, 80, 900, "sport.sports_leisure", "beleza_saude", 0.00,
             ("olympikus", "penalty", "mormaii")),
    Category("moveis_decoracao", "furniture_decor", 8.3, 70, 2500, "furniture.furniture_decor", "cama_mesa_banho",
             -0.15, ("tok_stok", "etna", "madesa")),
    Category("informatica_acessorios", "computers_accessories", 7.8, 90, 700, "computers.computers_accessories",
             "eletronicos", -0.10, ("multilaser", "logitech", "positivo")),
    Category("utilidades_domesticas", "housewares", 6.9, 60, 1200, "home.housewares", "eletroportateis", 0.00,
             ("tramontina", "brinox", "oxford")),
    Category("relogios_presentes", "watches_gifts", 5.9, 150, 400, "accessories.watches_gifts", "perfumaria", 0.05,
             ("technos", "orient", "mondaine")),
    Category("telefonia", "telephony", 4.5, 35, 250, "electronics.telephony", "eletronicos", -0.15,
             ("samsung", "motorola", "lg")),
    Category("ferramentas_jardim", "garden_tools", 4.3, 70, 2000, "home.garden_tools", "utilidades_domesticas", 0.00,
             ("vonder", "tramontina", "bosch")),
    Category("automotivo", "auto", 4.2, 90, 1000, "auto.accessories", "ferramentas_jardim", 0.00,
             ("bosch", "pirelli", "multilaser")),
    Category("brinquedos", "toys", 4.1, 80, 800, "kids.toys", "bebes", 0.10, ("estrela", "mattel", "lego")),
    Category("cool_stuff", "cool_stuff", 3.8, 130, 1500, "accessories.cool_stuff", "brinquedos", 0.00,
             ("geek", "funko", "xalingo")),
    Category("perfumaria", "perfumery", 3.4, 90, 350, "beauty.perfumery", "beleza_saude", 0.10,
             ("boticario", "natura", "avon")),
    Category("bebes", "baby", 3.0, 90, 1500, "kids.baby", "brinquedos", 0.05, ("chicco", "burigotto", "fisher_price")),
    Category("eletronicos", "electronics", 2.5, 45, 300, "electronics.accessories", "telefonia", -0.10,
             ("philips", "sony", "jbl")),
    Category("papelaria", "stationery", 2.3, 60, 600, "stationery.office", "informatica_acessorios", 0.10,
             ("faber_castell", "tilibra", "bic")),
    Category("pet_shop", "pet_shop", 1.7, 60, 1200, "pets.pet_shop", "utilidades_domesticas", 0.10,
             ("pedigree", "whiskas", "chalesco")),
    Category("eletroportateis", "small_appliances", 0.6, 150, 3000, "appliances.small_appliances",
             "utilidades_domesticas", 0.00, ("mondial", "arno", "britania")),
    Category("consoles_games", "consoles_games", 1.0, 70, 400, "electronics.consoles_games", "eletronicos", -0.05,
             ("sony", "microsoft", "nintendo")),
    Category("alimentos_bebidas", "food_drink", 0.3, 40, 800, "food.food_drink", "utilidades_domesticas", 0.15,
             ("nestle", "tres_coracoes", "melitta")),
)

CATEGORY_INDEX = {c.pt: i for i, c in enumerate(CATEGORIES)}
N_CATEGORIES = len(CATEGORIES)


def category_id(cat: Category) -> str:
    """A fixed 19-digit REES46-style category_id for a category."""
    h = int(hashlib.md5(f"ecomrec:category:{cat.pt}".encode()).hexdigest()[:15], 16)
    return str(2053013552000000000 + h % 100000000000000000)


class City(NamedTuple):
    """A city with its state, zip-prefix range, centre and customer/seller shares."""

    name: str
    state: str
    zip_lo: int
    zip_hi: int
    lat: float
    lng: float
    customer_weight: float
    seller_weight: float


_CITIES = (
    City("sao paulo", "SP", 1000, 5999, -23.55, -46.63, 15.6, 22.0),
    City("osasco", "SP", 6000, 6299, -23.53, -46.79, 0.9, 1.0),
    City("guarulhos", "SP", 7000, 7399, -23.46, -46.53, 1.2, 1.5),
    City("santo andre", "SP", 9000, 9299, -23.66, -46.53, 0.8, 1.0),
    City("sao bernardo do campo", "SP", 9600, 9899, -23.69, -46.56, 0.9, 1.2),
    City("santos", "SP", 11000, 11099, -23.96, -46.33, 0.6, 0.6),
    City("sao jose dos campos", "SP", 12200, 12249, -23.18, -45.88, 0.7, 1.0),
    City("campinas", "SP", 13000, 13149, -22.91, -47.06, 1.5, 3.0),
    City("ribeirao preto", "SP", 14000, 14114, -21.18, -47.81, 0.8, 2.5),
    City("sorocaba", "SP", 18000, 18109, -23.50, -47.46, 0.7, 1.5),
    City("rio de janeiro", "RJ", 20000, 23799, -22.91, -43.17, 7.0, 3.5),
    City("niteroi", "RJ", 24000, 24399, -22.88, -43.10, 1.0, 0.4),
    City("vitoria", "ES", 29000, 29099, -20.32, -40.34, 0.7, 0.4),
    City("belo horizonte", "MG", 30000, 31999, -19.92, -43.94, 2.8, 2.5),
    City("contagem", "MG", 32000, 32399, -19.93, -44.05, 0.5, 0.4),
    City("juiz de fora", "MG", 36000, 36099, -21.76, -43.35, 0.7, 0.6),
    City("uberlandia", "MG", 38400, 38419, -18.92, -48.28, 0.7, 0.6),
    City("salvador", "BA", 40000, 42599, -12.97, -38.50, 1.3, 0.4),
    City("aracaju", "SE", 49000, 49099, -10.91, -37.07, 0.25, 0.05),
    City("recife", "PE", 50000, 52999, -8.05, -34.88, 0.8, 0.4),
    City("maceio", "AL", 57000, 57099, -9.67, -35.74, 0.3, 0.05),
    City("joao pessoa", "PB", 58000, 58099, -7.12, -34.86, 0.3, 0.1),
    City("natal", "RN", 59000, 59159, -5.79, -35.21, 0.3, 0.1),
    City("fortaleza", "CE", 60000, 61599, -3.73, -38.53, 0.8, 0.3),
    City("teresina", "PI", 64000, 64099, -5.09, -42.80, 0.3, 0.05),
    City("sao luis", "MA", 65000, 65109, -2.53, -44.30, 0.4, 0.1),
    City("belem", "PA", 66000, 66999, -1.46, -48.50, 0.5, 0.1),
    City("macapa", "AP", 68900, 68914, -0.03, -51.07, 0.05, 0.01),
    City("manaus", "AM", 69000, 69099, -3.12, -60.02, 0.3, 0.1),
    City("boa vista", "RR", 69300, 69339, 2.82, -60.67, 0.04, 0.01),
    City("rio branco", "AC", 69900, 69924, -9.97, -67.81, 0.05, 0.01),
    City("brasilia", "DF", 70000, 72799, -15.79, -47.88, 2.1, 1.0),
    City("goiania", "GO", 74000, 74899, -16.68, -49.25, 1.0, 0.8),
    City("porto velho", "RO", 76800, 76849, -8.76, -63.90, 0.15, 0.02),
    City("palmas", "TO", 77000, 77299, -10.18, -48.33, 0.15, 0.02),
    City("cuiaba", "MT", 78000, 78109, -15.60, -56.10, 0.4, 0.1),
    City("campo grande", "MS", 79000, 79129, -20.44, -54.65, 0.4, 0.2),
    City("curitiba", "PR", 80000, 82999, -25.43, -49.27, 1.5, 3.5),
    City("londrina", "PR", 86000, 86099, -23.31, -51.16, 0.6, 1.2),
    City("maringa", "PR", 87000, 87099, -23.42, -51.94, 0.5, 1.5),
    City("florianopolis", "SC", 88000, 88099, -27.59, -48.55, 0.6, 1.0),
    City("joinville", "SC", 89200, 89239, -26.30, -48.85, 0.6, 1.2),
    City("porto alegre", "RS", 90000, 91999, -30.03, -51.23, 1.4, 1.6),
    City("caxias do sul", "RS", 95000, 95124, -29.17, -51.18, 0.5, 0.6),
)
# sorted by zip range so that geolocation rows come out ordered by zip prefix without a sort
CITIES: tuple[City, ...] = tuple(sorted(_CITIES, key=lambda c: c.zip_lo))

# first payment of an order: Olist-like shares
PAYMENT_TYPES = ("credit_card", "boleto", "voucher", "debit_card")
PAYMENT_SHARES = (0.74, 0.195, 0.045, 0.02)

ORDER_STATUSES = ("delivered", "shipped", "canceled", "invoiced", "processing")
ORDER_STATUS_SHARES = (0.970, 0.011, 0.007, 0.006, 0.006)

PRICE_LEVELS = ("low", "mid", "high")
PRICE_LEVEL_SHARES = (0.35, 0.45, 0.20)
TIER_LOG_OFFSET = (-0.6, 0.0, 0.6)  # product price tier: log-price offset from the category median

# Review text, by sentiment band (0 = scores 1-2, 1 = score 3, 2 = scores 4-5).
REVIEW_TITLES = (
    ("Péssimo", "Não recebi", "Decepcionado", "Produto com defeito", "Não recomendo"),
    ("Bom", "Ok", "Razoável", "Mais ou menos"),
    ("Recomendo", "Excelente", "Muito bom", "Super recomendo", "Ótimo"),
)
REVIEW_PHRASES = (
    ("Não recebi o produto", "Produto veio com defeito", "Ainda não chegou, prazo estourado",
     "Péssimo atendimento", 'Veio errado, quero "reembolso"', "Não recomendo", "Entrega atrasada",
     "Faltou uma peça", 'Diz "original" mas é falsificado'),
    ("Produto ok", "Poderia ser melhor", "A embalagem veio amassada, mas o produto está bom", "Demorou um pouco",
     "Razoável pelo preço", "Cor diferente da foto", 'Tamanho "único" ficou pequeno'),
    ("Produto muito bom", "Chegou antes do prazo", "Recomendo", "Ótima qualidade", "Entrega rápida, tudo certo",
     "Superou minhas expectativas", "Vendedor confiável", 'Produto "original" como anunciado', "Bem embalado",
     "Comprarei novamente"),
)
