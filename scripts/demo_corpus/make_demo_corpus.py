#!/usr/bin/env python3
"""Generate the small synthetic demo corpus that lives next to this script (deterministic, stdlib only).

Writes, relative to --out (default: the folder of this script):

    news.txt                                         800 raw news sentences
    gigaword/sumdata/train/train.article.txt         600 Gigaword-normalized articles (<unk>)
    gigaword/sumdata/train/train.title.txt           their headlines
    gigaword/sumdata/train/valid.article.filter.txt  60 articles (<unk>)
    gigaword/sumdata/train/valid.title.filter.txt    their headlines
    gigaword/Giga/input.txt                          80 test articles (UNK)
    gigaword/Giga/task1_ref0.txt                     their headlines
    cornell/movie_lines.txt                          Cornell Movie-Dialogs lines
    cornell/movie_conversations.txt                  300 conversations over them

Every person, company and party is invented; countries and cities are real. The same seed always gives
byte-identical files.

Example:
    python scripts/demo_corpus/make_demo_corpus.py
    python scripts/demo_corpus/make_demo_corpus.py --seed 7 --out /tmp/demo_corpus
"""

import argparse
import random
import re
from pathlib import Path

# ----------------------------------------------------------------------------------------------------
# The world: slot lists shared by the news sentences and the headline pairs
# ----------------------------------------------------------------------------------------------------

# name in running text, name in a headline, adjective, capital, a second city (the markets' city first)
COUNTRY_ROWS = [
    ("Japan", "Japan", "Japanese", "Tokyo", "Osaka"),
    ("China", "China", "Chinese", "Beijing", "Shanghai"),
    ("the United States", "U.S.", "U.S.", "Washington", "New York"),
    ("Britain", "Britain", "British", "London", "Manchester"),
    ("France", "France", "French", "Paris", "Lyon"),
    ("Germany", "Germany", "German", "Berlin", "Frankfurt"),
    ("Italy", "Italy", "Italian", "Rome", "Milan"),
    ("Spain", "Spain", "Spanish", "Madrid", "Barcelona"),
    ("Russia", "Russia", "Russian", "Moscow", "Novosibirsk"),
    ("India", "India", "Indian", "New Delhi", "Mumbai"),
    ("Brazil", "Brazil", "Brazilian", "Brasilia", "Sao Paulo"),
    ("Mexico", "Mexico", "Mexican", "Mexico City", "Monterrey"),
    ("Canada", "Canada", "Canadian", "Ottawa", "Toronto"),
    ("Australia", "Australia", "Australian", "Canberra", "Sydney"),
    ("South Korea", "S. Korea", "South Korean", "Seoul", "Busan"),
    ("Indonesia", "Indonesia", "Indonesian", "Jakarta", "Surabaya"),
    ("Thailand", "Thailand", "Thai", "Bangkok", "Chiang Mai"),
    ("the Philippines", "Philippines", "Philippine", "Manila", "Cebu"),
    ("Egypt", "Egypt", "Egyptian", "Cairo", "Alexandria"),
    ("Turkey", "Turkey", "Turkish", "Ankara", "Istanbul"),
    ("South Africa", "S. Africa", "South African", "Pretoria", "Johannesburg"),
    ("Nigeria", "Nigeria", "Nigerian", "Abuja", "Lagos"),
    ("Kenya", "Kenya", "Kenyan", "Nairobi", "Mombasa"),
    ("Argentina", "Argentina", "Argentine", "Buenos Aires", "Cordoba"),
    ("Chile", "Chile", "Chilean", "Santiago", "Valparaiso"),
    ("Poland", "Poland", "Polish", "Warsaw", "Krakow"),
    ("Sweden", "Sweden", "Swedish", "Stockholm", "Gothenburg"),
    ("Pakistan", "Pakistan", "Pakistani", "Islamabad", "Karachi"),
    ("Vietnam", "Vietnam", "Vietnamese", "Hanoi", "Ho Chi Minh City"),
    ("Malaysia", "Malaysia", "Malaysian", "Kuala Lumpur", "Penang"),
    ("Greece", "Greece", "Greek", "Athens", "Thessaloniki"),
    ("Peru", "Peru", "Peruvian", "Lima", "Arequipa"),
]
MARKET_CITY = {"China": "Shanghai", "the United States": "New York", "Germany": "Frankfurt", "Italy": "Milan",
               "India": "Mumbai", "Brazil": "Sao Paulo", "Canada": "Toronto", "Australia": "Sydney",
               "Turkey": "Istanbul", "South Africa": "Johannesburg", "Nigeria": "Lagos", "Pakistan": "Karachi",
               "Vietnam": "Ho Chi Minh City"}


class Country:
    def __init__(self, name, head, adj, capital, city):
        self.name, self.head, self.adj, self.capital, self.city = name, head, adj, capital, city
        self.market = MARKET_CITY.get(name, capital)

    def poss(self, noun):
        """"Japan's largest bank" / "the United States' largest bank"."""
        return f"{self.name}' {noun}" if self.name.endswith("s") else f"{self.name}'s {noun}"


COUNTRIES = [Country(*row) for row in COUNTRY_ROWS]

# long name, short name, what it is, home country, what it sells
COMPANY_ROWS = [
    ("Hanwa Motor Corp.", "Hanwa", "carmaker", "Japan", "small cars"),
    ("Daisen Electronics", "Daisen", "electronics maker", "Japan", "flat-screen televisions"),
    ("Sunrise Petroleum Corp.", "Sunrise Petroleum", "oil company", "China", "diesel fuel"),
    ("Great Wall Telecom", "Great Wall Telecom", "telecommunications company", "China", "mobile phone services"),
    ("Atlas Airways", "Atlas Airways", "airline", "the United States", "air tickets"),
    ("Meridian Bancorp", "Meridian", "bank", "the United States", "home mortgages"),
    ("Brightway Stores Inc.", "Brightway", "retailer", "the United States", "discount clothing"),
    ("Corvane Pharmaceuticals", "Corvane", "drugmaker", "Britain", "cancer drugs"),
    ("Albion Breweries", "Albion", "brewer", "Britain", "beer"),
    ("Valmont Aerospace", "Valmont", "aircraft maker", "France", "passenger jets"),
    ("Lumiere Cosmetics", "Lumiere", "cosmetics group", "France", "skin creams"),
    ("Rheinwerk AG", "Rheinwerk", "engineering group", "Germany", "industrial machinery"),
    ("Nordbank AG", "Nordbank", "bank", "Germany", "business loans"),
    ("Ventura Motori", "Ventura", "scooter maker", "Italy", "motor scooters"),
    ("Solara Energia", "Solara", "power company", "Spain", "solar panels"),
    ("Volga Metals", "Volga Metals", "metals producer", "Russia", "aluminum"),
    ("Sarovar Software", "Sarovar", "software company", "India", "outsourcing services"),
    ("Tropica Foods", "Tropica", "food company", "Brazil", "frozen chicken"),
    ("Sierra Madre Cement", "Sierra Madre", "cement maker", "Mexico", "cement"),
    ("Great Lakes Rail", "Great Lakes Rail", "railway operator", "Canada", "freight transport"),
    ("Southern Cross Mining", "Southern Cross", "mining company", "Australia", "iron ore"),
    ("Hanul Semiconductor", "Hanul", "chipmaker", "South Korea", "memory chips"),
    ("Daeyang Heavy Industries", "Daeyang", "shipbuilder", "South Korea", "container ships"),
    ("Nusantara Plantations", "Nusantara", "plantation company", "Indonesia", "palm oil"),
    ("Anatolia Textiles", "Anatolia", "textile maker", "Turkey", "cotton fabrics"),
    ("Highveld Gold", "Highveld", "gold miner", "South Africa", "gold"),
    ("Pampas Agro", "Pampas", "agribusiness group", "Argentina", "soybeans"),
    ("Andes Copper", "Andes Copper", "copper miner", "Chile", "copper"),
    ("Nordvik Telecom", "Nordvik", "telecom equipment maker", "Sweden", "network equipment"),
    ("Lotus Pharma", "Lotus", "drugmaker", "India", "generic medicines"),
    ("Kestrel Motors", "Kestrel", "truck maker", "Germany", "heavy trucks"),
    ("Orient Express Shipping", "Orient Express", "shipping group", "Malaysia", "shipping services"),
]
COUNTRY_BY_NAME = {c.name: c for c in COUNTRIES}


class Company:
    def __init__(self, name, short, kind, country, product):
        self.name, self.short, self.kind, self.product = name, short, kind, product
        self.country = COUNTRY_BY_NAME[country]


COMPANIES = [Company(*row) for row in COMPANY_ROWS]

FIRST_M = ["Kenji", "Wei", "James", "Thomas", "Pierre", "Hans", "Marco", "Carlos", "Ivan", "Rahul", "Paulo",
           "Miguel", "David", "Peter", "Min-ho", "Budi", "Somchai", "Jose", "Ahmed", "Mehmet", "Sipho", "Emeka",
           "Joseph", "Diego", "Andres", "Piotr", "Lars", "Imran", "Minh", "Farid", "Nikos", "Luis", "Robert",
           "Oliver", "Anton", "Stefan", "Victor", "Omar", "Daniel", "Martin"]
FIRST_F = ["Yuki", "Mei", "Sarah", "Claire", "Anna", "Giulia", "Lucia", "Olga", "Priya", "Ana", "Maria",
           "Helen", "Ji-yeon", "Sari", "Malee", "Rosa", "Leila", "Ayse", "Thandi", "Ngozi", "Grace", "Sofia",
           "Elena", "Agnieszka", "Ingrid", "Ayesha", "Linh", "Nadia", "Eleni", "Carmen", "Laura", "Irene"]
SURNAMES = ["Tanaka", "Nakamura", "Zhang", "Liu", "Miller", "Harris", "Dubois", "Moreau", "Becker", "Krause",
            "Rossi", "Bianchi", "Garcia", "Navarro", "Petrov", "Sokolov", "Sharma", "Mehta", "Souza", "Almeida",
            "Hernandez", "Ortega", "Campbell", "Fraser", "Walsh", "Park", "Kang", "Santoso", "Wibowo",
            "Srisuk", "Reyes", "Mansour", "Hassan", "Yilmaz", "Demir", "Nkosi", "Okafor", "Adeyemi", "Otieno",
            "Kamau", "Ferreyra", "Castillo", "Kowalski", "Nowak", "Lindqvist", "Berg", "Qureshi", "Malik",
            "Nguyen", "Tran", "Rahman", "Ismail", "Papadakis", "Georgiou", "Quispe", "Vargas", "Lambert",
            "Jensen", "Moretti", "Ivanova", "Fischer", "Thompson", "Carter", "Hoffman"]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
NUMBER_WORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twelve"]
REGIONS = ["northern", "southern", "eastern", "western", "central", "northeastern", "northwestern",
           "southeastern", "southwestern"]
DIRECTIONS = ["north", "south", "east", "west", "northeast", "northwest", "southeast", "southwest"]
PARTIES = ["Social Democratic Party", "National Liberal Party", "People's Alliance", "Labor Party",
           "Green Party", "Democratic Union", "Conservative Party", "Reform Party", "Progressive Front",
           "Citizens' Movement"]
MINISTRIES = ["finance", "trade", "foreign", "health", "interior", "labor", "energy", "agriculture",
              "defense", "transport", "education", "economy"]
TOPICS = ["trade", "regional security", "climate change", "energy cooperation", "border disputes",
          "nuclear issues", "migration", "fishing rights", "debt relief", "investment", "counterterrorism",
          "water sharing"]
# (verb, object, purpose)
POLICIES = [
    ("cut", "income taxes", "boost consumer spending"),
    ("raise", "the sales tax", "reduce the budget deficit"),
    ("cut", "fuel subsidies", "ease pressure on public finances"),
    ("raise", "the minimum wage", "help low-income families"),
    ("cut", "corporate taxes", "attract foreign investment"),
    ("increase", "military spending", "modernize the armed forces"),
    ("raise", "electricity prices", "cover rising fuel costs"),
    ("cut", "import tariffs", "lower food prices"),
    ("increase", "pensions", "protect the elderly from inflation"),
    ("raise", "tobacco taxes", "discourage smoking"),
    ("cut", "public sector jobs", "meet the terms of an international bailout"),
    ("increase", "spending on roads and railways", "create jobs"),
]
BANK_REASONS = ["rising inflation", "a weakening currency", "strong economic growth", "higher food prices",
                "a surge in consumer credit"]
CUT_REASONS = ["support a slowing economy", "help exporters", "encourage lending to small businesses",
               "counter the effects of a global slowdown"]
PROFIT_UP = ["strong demand for {p}", "higher sales in Asia", "cost cuts and a weaker currency",
             "record sales of {p}", "a recovery in its home market"]
PROFIT_DOWN = ["weak demand for {p}", "a stronger currency", "rising raw material costs",
               "falling prices for {p}", "heavy losses at its overseas units"]
PERIODS = ["first-quarter", "second-quarter", "third-quarter", "fourth-quarter", "annual", "half-year"]
EXPANSION = ["Asia", "Latin America", "Europe", "Africa", "the Middle East", "North America"]
WORKERS = [("teachers", "classes at public schools"), ("doctors", "hospital services"),
           ("nurses", "hospital services"), ("dock workers", "shipping at major ports"),
           ("bus drivers", "public transport"), ("miners", "coal production"), ("pilots", "air travel"),
           ("railway workers", "train services"), ("postal workers", "mail deliveries"),
           ("garbage collectors", "waste collection"), ("taxi drivers", "traffic in the capital")]
OFFICIALS = ["defense minister", "health minister", "transport minister", "central bank governor",
             "tax official", "police chief", "mayor", "customs chief", "army general", "state governor"]
GOODS = ["cigarettes", "gold", "ivory", "cocaine", "heroin", "counterfeit medicines", "rare birds",
         "stolen cars", "weapons", "fuel"]
SCANDALS = ["a bribery scandal", "allegations that he misused public funds", "a row over a failed arms deal",
            "criticism of his handling of the floods", "a dispute over the budget",
            "reports that he had hidden money abroad"]
PROJECTS = ["a new power plant", "rural roads", "a water supply project", "schools in poor areas",
            "flood defenses", "a railway line", "health clinics", "irrigation projects"]
PROTESTS = [("higher fuel prices", "fuel prices"), ("the new labor law", "labor law"),
            ("government corruption", "corruption"), ("cuts in public spending", "spending cuts"),
            ("the construction of a dam", "dam project"), ("rising food prices", "food prices"),
            ("a new tax on farmers", "farm tax")]
COMMODITIES = [("copper", "a tonne"), ("coffee", "a pound"), ("wheat", "a bushel"), ("sugar", "a pound"),
               ("cocoa", "a tonne"), ("cotton", "a pound")]
OIL_REASONS = ["concerns about weak demand in Europe", "a rise in U.S. crude inventories",
               "signs of slower growth in China", "a decision by producers to raise output"]
OIL_UP_REASONS = ["unrest in the Middle East", "a fall in U.S. crude inventories", "a cold winter in Europe",
                  "a strike by oil workers in Nigeria"]
SAFETY_REASONS = ["fears of a global slowdown", "tensions in the Middle East", "a weaker dollar",
                  "turmoil in stock markets"]
SECTORS = ["bank", "technology", "mining", "energy", "property", "telecommunications", "airline",
           "retail", "steel", "auto"]
ROUNDS = [("first round", "second round"), ("second round", "third round"),
          ("third round", "fourth round"), ("quarterfinals", "semifinals"), ("semifinals", "final")]
FIRES = ["garment factory", "nightclub", "market", "hotel", "hospital", "apartment building", "warehouse"]


def person(r, gender=None):
    """``(full name, surname, pronoun)``."""
    if gender is None:
        gender = r.choice("mf")
    first = r.choice(FIRST_M if gender == "m" else FIRST_F)
    last = r.choice(SURNAMES)
    return f"{first} {last}", last, "he" if gender == "m" else "she"


def pct(r, lo=0.5, hi=9.5):
    return f"{r.uniform(lo, hi):.1f}"


def whole(r, lo, hi):
    return f"{r.randint(lo, hi):,}"


def money(r, big=False, small=False):
    unit = "billion" if big or (not small and r.random() < 0.3) else "million"
    x = f"{r.uniform(1.1, 9.9):.1f}" if unit == "billion" else str(r.choice(range(50, 950, 10)))
    return f"${x} {unit}" if r.random() < 0.6 else f"{x} {unit} dollars"


def two(r, items):
    a, b = r.sample(items, 2)
    return a, b


def cap(s):
    return s[0].upper() + s[1:]


def on_day(r):
    return f"on {r.choice(DAYS)}"


# ----------------------------------------------------------------------------------------------------
# Event templates: each returns (raw sentence, raw headline); the headline copies or compresses the
# sentence (country adjective -> country name, past tense -> present / "to" + verb, no articles).
# ----------------------------------------------------------------------------------------------------

def ev_policy(r):
    c, (verb, obj, goal) = r.choice(COUNTRIES), r.choice(POLICIES)
    p, day, who = pct(r, 1, 15), on_day(r), person(r)[0]
    obj_head = obj.removeprefix("the ")
    frames = [
        (f"The {c.adj} government said {day} it would {verb} {obj} by {p} percent next year to {goal}.",
         f"{c.head} to {verb} {obj_head} by {p} percent"),
        (f"{c.name} will {verb} {obj} by {p} percent next year to {goal}, {c.adj} finance minister {who} "
         f"said {day}.", f"{c.head} to {verb} {obj_head} by {p} percent"),
        (f"The {c.adj} cabinet {day} approved a plan to {verb} {obj} from {r.choice(MONTHS)} in an effort to "
         f"{goal}.", f"{c.head} cabinet approves plan to {verb} {obj_head}"),
        (f"{c.adj} lawmakers {day} rejected a government proposal to {verb} {obj}, dealing a blow to prime "
         f"minister {who}.", f"{c.head} parliament rejects plan to {verb} {obj_head}"),
    ]
    return r.choice(frames)


def ev_central_bank(r):
    c, day = r.choice(COUNTRIES), on_day(r)
    rate = f"{r.randint(1, 14)}.{r.choice(['0', '25', '5', '75'])}"
    old = f"{r.randint(1, 14)}.{r.choice(['0', '25', '5', '75'])}"
    frames = [
        (f"The {c.adj} central bank raised its key interest rate by {r.choice([25, 50, 75, 100])} basis points "
         f"to {rate} percent {day}, citing {r.choice(BANK_REASONS)}.",
         f"{c.head} central bank raises rates to {rate} percent"),
        (f"{c.poss('central bank')} {day} cut its benchmark lending rate to {rate} percent from {old} percent "
         f"to {r.choice(CUT_REASONS)}.", f"{c.head} cuts interest rate to {rate} percent"),
        (f"The central bank of {c.name} left interest rates unchanged at {rate} percent {day}, saying "
         f"{r.choice(BANK_REASONS)} remained a concern.", f"{c.head} central bank holds rates steady"),
        (f"{c.adj} central bank governor {person(r)[0]} said {day} that interest rates would stay at "
         f"{rate} percent for the rest of the year.", f"{c.head} central bank to keep rates at {rate} percent"),
    ]
    return r.choice(frames)


def ev_earnings(r):
    co, day, period = r.choice(COMPANIES), on_day(r), r.choice(PERIODS)
    p, amount = pct(r, 2, 60), money(r)
    up = r.random() < 0.55
    reason = r.choice(PROFIT_UP if up else PROFIT_DOWN).format(p=co.product)
    who = r.choice([co.country.poss(f"largest {co.kind}"), f"the {co.country.adj} {co.kind}"])
    move = "rose" if up else "fell"
    frames = [
        (f"{co.name}, {who}, said {day} its {period} net profit {move} {p} percent to {amount} on {reason}.",
         f"{co.short} {period} profit {'up' if up else 'down'} {p} percent"),
        (f"{co.short} {day} reported a {p} percent {'rise' if up else 'drop'} in {period} net profit to "
         f"{amount}, citing {reason}.", f"{co.short} posts {p} percent {'rise' if up else 'fall'} in profit"),
        (f"Shares in {co.name} {'jumped' if up else 'slumped'} {pct(r, 2, 15)} percent {day} after the "
         f"{co.kind} said its {period} profit {move} on {reason}.",
         f"{co.short} shares {'jump' if up else 'slump'} on {period} results"),
    ]
    return r.choice(frames)


def ev_merger(r):
    a, b = two(r, COMPANIES)
    day, amount = on_day(r), money(r, big=True)
    frames = [
        (f"{a.name} agreed {day} to buy {b.country.adj} {b.kind} {b.short} for {amount} in cash, creating "
         f"one of the world's biggest makers of {b.product}.", f"{a.short} to buy {b.short} for {amount}"),
        (f"{a.short} said {day} it would acquire {b.name} in a deal worth {amount}, as it seeks to expand in "
         f"{r.choice(EXPANSION)}.", f"{a.short} to acquire {b.short} in {amount} deal"),
        (f"{b.name} {day} rejected a takeover offer of {amount} from {a.short}, saying the bid undervalued "
         f"the company.", f"{b.short} rejects {amount} bid from {a.short}"),
        (f"{a.short} and {b.short} said {day} they had called off merger talks after failing to agree on a "
         f"price, sending shares in both companies lower.", f"{a.short} , {b.short} call off merger talks"),
    ]
    return r.choice(frames)


def ev_election(r):
    c, day, party = r.choice(COUNTRIES), on_day(r), r.choice(PARTIES)
    (full, sur, _), full2 = person(r), person(r)[0]
    p = pct(r, 40, 70)
    frames = [
        (f"{full}, the leader of the opposition {party}, won {c.poss('presidential election')} {day} with "
         f"{p} percent of the vote, official results showed.", f"{sur} wins {c.head} presidential election"),
        (f"Voters in {c.name} went to the polls {day} in a parliamentary election expected to return prime "
         f"minister {full} and the ruling {party} to power.", f"{c.head} votes in parliamentary election"),
        (f"{c.adj} president {full} conceded defeat {day} after early results showed challenger {full2} "
         f"leading with {p} percent of the vote.", f"{c.head} president {sur} concedes defeat"),
        (f"The ruling {party} in {c.name} lost its parliamentary majority {day}, winning only {p} percent of "
         f"the vote in early elections.", f"{c.head} ruling party loses majority"),
    ]
    return r.choice(frames)


def ev_diplomacy(r):
    c, d = two(r, COUNTRIES)
    day, topic, full = on_day(r), r.choice(TOPICS), person(r)[0]
    frames = [
        (f"{c.adj} foreign minister {full} arrived in {d.capital} {day} for {r.choice(NUMBER_WORDS[:3])}-day "
         f"talks with {d.adj} officials on {topic}.", f"{c.head} foreign minister in {d.capital} for talks"),
        (f"{c.adj} prime minister {full} will visit {d.name} next week to discuss {topic}, the foreign "
         f"ministry in {c.capital} said {day}.", f"{c.head} prime minister to visit {d.head}"),
        (f"Leaders of {c.name} and {d.name} signed an agreement on {topic} in {c.capital} {day}, ending "
         f"{r.choice(NUMBER_WORDS)} years of negotiations.", f"{c.head} , {d.head} sign {topic} accord"),
        (f"{c.name} recalled its ambassador to {d.name} {day} in protest over what it called interference in "
         f"its internal affairs.", f"{c.head} recalls ambassador to {d.head}"),
        (f"{c.adj} president {full} said {day} that talks with {d.name} on {topic} had made \"good progress\" "
         f"but that differences remained.", f"{c.head} sees progress in talks with {d.head}"),
    ]
    return r.choice(frames)


def ev_soccer(r):
    c, d = two(r, COUNTRIES)
    day, (full, sur, _) = on_day(r), person(r, "m")
    a, b = r.randint(1, 5), r.randint(0, 3)
    a = max(a, b + 1)
    frames = [
        (f"{c.name} beat {d.name} {a}-{b} in a World Cup qualifier in {c.capital} {day}, with striker {full} "
         f"scoring twice in the second half.", f"{c.head} beat {d.head} in World Cup qualifier"),
        (f"{c.name} and {d.name} drew {b}-{b} in a friendly international in {c.city} {day}.",
         f"{c.head} held to {b}-{b} draw by {d.head}"),
        (f"{c.adj} soccer coach {full} resigned {day}, a day after his team lost {a}-{b} to {d.name} in the "
         f"regional championship.", f"{c.head} soccer coach {sur} resigns"),
        (f"{c.adj} striker {full} scored a late winner as {c.name} beat {d.name} {a}-{b} {day} to reach the "
         f"final of the regional championship.", f"{c.head} beat {d.head} to reach final"),
    ]
    return r.choice(frames)


def ev_tennis(r):
    c, d = two(r, COUNTRIES)
    (p1, s1, _), (p2, s2, _) = person(r), person(r)
    rnd, nxt = r.choice(ROUNDS)
    sets = ", ".join(f"6-{r.randint(0, 4)}" for _ in range(r.randint(2, 3)))
    city = r.choice(COUNTRIES).capital
    day = on_day(r)
    frames = [
        (f"{p1} of {c.name} beat {p2} of {d.name} {sets} in the {rnd} of the {city} Open {day}.",
         f"{s1} beats {s2} in {city} Open"),
        (f"Top seed {p1} reached the {nxt} of the {city} Open {day} with a {sets} win over {p2}.",
         f"{s1} reaches {nxt} in {city}"),
        (f"{p1} of {c.name} withdrew from the {city} Open {day} with a shoulder injury, the organizers said.",
         f"{s1} pulls out of {city} Open"),
    ]
    return r.choice(frames)


def ev_disaster(r):
    c, day, reg = r.choice(COUNTRIES), on_day(r), r.choice(REGIONS)
    n = whole(r, 3, 140)
    km = r.randint(40, 400)
    frames = [
        (f"Floods triggered by {r.choice(NUMBER_WORDS)} days of heavy rain killed at least {n} people in {reg} "
         f"{c.name} and left thousands homeless, officials said {day}.", f"floods kill {n} in {c.head}"),
        (f"A powerful typhoon slammed into {c.poss('coast')} {day}, killing {n} people and forcing "
         f"{whole(r, 2000, 90000)} residents to flee their homes.", f"typhoon kills {n} in {c.head}"),
        (f"An earthquake measuring {r.randint(5, 7)}.{r.randint(0, 9)} on the Richter scale struck {reg} "
         f"{c.name} {day}, killing at least {n} people, officials said.", f"quake kills {n} in {c.head}"),
        (f"A strong earthquake struck {km} kilometers ({int(km * 0.62)} miles) {r.choice(DIRECTIONS)} of "
         f"{c.capital} {day}, but there were no immediate reports of damage.", f"strong quake hits {c.head}"),
        (f"A landslide buried a village in {reg} {c.name} {day}, and rescuers were searching for at least "
         f"{n} missing people.", f"landslide buries village in {c.head}"),
        (f"Heavy snow closed roads and airports across {reg} {c.name} {day}, stranding thousands of "
         f"travelers.", f"heavy snow strands thousands in {c.head}"),
        (f"Temperatures in {c.city} soared to {r.randint(38, 47)} degrees Celsius {day} as a heat wave "
         f"gripped {c.name} for a {r.choice(['second', 'third', 'fourth'])} week.", f"heat wave grips {c.head}"),
    ]
    return r.choice(frames)


def ev_markets(r):
    c, day, sector = r.choice(COUNTRIES), on_day(r), r.choice(SECTORS)
    up = r.random() < 0.5
    pts, p, level = f"{r.uniform(5, 400):.2f}", pct(r, 0.2, 4), f"{r.uniform(1000, 30000):,.2f}"
    frames = [
        (f"{c.market} stocks closed {'higher' if up else 'lower'} {day}, with the benchmark index "
         f"{'rising' if up else 'falling'} {pts} points, or {p} percent, to {level}, led by {sector} shares.",
         f"{c.market} stocks close {'higher' if up else 'lower'}"),
        (f"Share prices in {c.market} {'rose' if up else 'fell'} {p} percent {day} as investors "
         f"{'bought' if up else 'sold'} {sector} stocks ahead of {c.poss('central bank')} meeting.",
         f"{c.market} shares {'rise' if up else 'fall'} {p} percent"),
        (f"The {c.adj} currency {'rose' if up else 'fell'} to a {r.choice(NUMBER_WORDS)}-month "
         f"{'high' if up else 'low'} against the dollar {day}.",
         f"{c.adj} currency at {'high' if up else 'low'} against dollar"),
    ]
    return r.choice(frames)


def ev_commodities(r):
    day, city = on_day(r), r.choice(["London", "New York", "Singapore", "Tokyo"])
    price = f"{r.uniform(40, 130):.2f}"
    name, unit = r.choice(COMMODITIES)
    frames = [
        (f"Oil prices fell to {price} dollars a barrel {day}, their lowest level in {r.choice(NUMBER_WORDS)} "
         f"months, on {r.choice(OIL_REASONS)}.", f"oil falls to ${price} a barrel"),
        (f"Oil prices rose above {price} dollars a barrel {day} on {r.choice(OIL_UP_REASONS)}.",
         f"oil rises above ${price}"),
        (f"Gold rose to {whole(r, 900, 2400)} dollars an ounce in {city} {day} as investors sought safety "
         f"amid {r.choice(SAFETY_REASONS)}.", "gold rises as investors seek safety"),
        (f"The price of {name} climbed to its highest level in {r.choice(NUMBER_WORDS)} years in {city} "
         f"{day}, reaching {price} dollars {unit}.", f"{name} prices hit multi-year high"),
    ]
    return r.choice(frames)


def ev_strike(r):
    c, day, (workers, service) = r.choice(COUNTRIES), on_day(r), r.choice(WORKERS)
    co, (against, against_head) = r.choice(COMPANIES), r.choice(PROTESTS)
    frames = [
        (f"Thousands of {workers} in {c.name} went on strike {day} to demand higher wages, disrupting "
         f"{service} across the country.", f"{workers} strike in {c.head}"),
        (f"Workers at {co.name} walked off the job {day} after talks on a new contract broke down, a union "
         f"spokesman said.", f"{co.short} workers go on strike"),
        (f"{cap(workers)} in {c.name} called off a {r.choice(NUMBER_WORDS)}-day strike {day} after the "
         f"government agreed to raise their pay by {pct(r, 3, 20)} percent.", f"{c.head} {workers} end strike"),
        (f"Thousands of people marched through {c.capital} {day} to protest against {against}, in the biggest "
         f"demonstration in the city for years.", f"thousands protest in {c.capital} over {against_head}"),
    ]
    return r.choice(frames)


def ev_statistics(r):
    c, day, month = r.choice(COUNTRIES), on_day(r), r.choice(MONTHS)
    p = pct(r, 0.3, 12)
    frames = [
        (f"{c.poss('trade deficit')} narrowed to {money(r, True)} in {month} from {money(r, True)} a year "
         f"earlier, the trade ministry said {day}.", f"{c.head} trade deficit narrows in {month}"),
        (f"Consumer prices in {c.name} rose {p} percent in {month} from a year earlier, the fastest pace in "
         f"{r.choice(NUMBER_WORDS)} years, the statistics office said {day}.",
         f"{c.head} inflation rises to {p} percent"),
        (f"{c.adj} unemployment fell to {p} percent in {month}, its lowest level since {r.randint(1990, 2008)}, "
         f"government figures showed {day}.", f"{c.head} jobless rate falls to {p} percent"),
        (f"The {c.adj} economy grew {p} percent in the {r.choice(['first', 'second', 'third', 'fourth'])} "
         f"quarter from a year earlier, beating forecasts, the government said {day}.",
         f"{c.head} economy grows {p} percent"),
        (f"{c.poss('exports')} fell {p} percent in {month} as demand from Europe weakened, customs data showed "
         f"{day}.", f"{c.head} exports fall {p} percent in {month}"),
    ]
    return r.choice(frames)


def ev_crime(r):
    c, day, official = r.choice(COUNTRIES), on_day(r), r.choice(OFFICIALS)
    years, n, goods = r.randint(2, 20), r.randint(3, 40), r.choice(GOODS)
    frames = [
        (f"A court in {c.capital} {day} sentenced a former {official} to {years} years in prison for taking "
         f"bribes from {r.choice(SECTORS)} companies.", f"former {c.adj} {official} jailed for {years} years"),
        (f"Police in {c.city} arrested {n} people {day} on suspicion of smuggling {goods} worth "
         f"{money(r, small=True)}, a police spokesman said.", f"police arrest {n} in {c.city} {goods} smuggling case"),
        (f"{c.adj} customs officers seized {whole(r, 20, 900)} kilograms of {goods} at the port of {c.city} "
         f"{day}, the biggest haul this year.", f"{c.head} seizes {goods} in {c.city}"),
        (f"Gunmen killed {n} people in an attack on a police station in {r.choice(REGIONS)} {c.name} {day}, "
         f"officials said.", f"gunmen kill {n} in {c.head} police station attack"),
    ]
    return r.choice(frames)


def ev_jobs(r):
    co, day = r.choice(COMPANIES), on_day(r)
    jobs, years = whole(r, 300, 15000), r.choice(NUMBER_WORDS[:4])
    city = r.choice(COUNTRIES).city
    frames = [
        (f"{co.name} said {day} it would cut {jobs} jobs over the next {years} years as it struggles with "
         f"falling demand for {co.product}.", f"{co.short} to cut {jobs} jobs"),
        (f"{co.short} plans to build a new factory in {city} at a cost of {money(r)}, creating about {jobs} "
         f"jobs, the company said {day}.", f"{co.short} to build factory in {city}"),
        (f"{co.name} {day} named {person(r)[0]}, a former {r.choice(COMPANIES).short} executive, as its new "
         f"chief executive.", f"{co.short} names new chief executive"),
        (f"{co.name} unveiled a new line of {co.product} {day}, hoping to win back market share from "
         f"{r.choice(COMPANIES).short}.", f"{co.short} unveils new {co.product}"),
        (f"{co.short} signed a deal worth {money(r)} {day} to supply {co.product} to {r.choice(COUNTRIES).name} "
         f"over the next {years} years.", f"{co.short} wins {co.product} supply deal"),
    ]
    return r.choice(frames)


def ev_politics(r):
    c, day, (full, _, pron) = r.choice(COUNTRIES), on_day(r), person(r)
    minister = f"{r.choice(MINISTRIES)} minister"
    full2 = person(r)[0]
    frames = [
        (f"{c.adj} {minister} {full} resigned {day} amid {r.choice(SCANDALS)}, saying {pron} wanted to spare "
         f"the government further embarrassment.", f"{c.head} {minister} resigns"),
        (f"{c.adj} president {full} {day} appointed {full2}, a former central bank governor, as the new "
         f"finance minister.", f"{c.head} names new finance minister"),
        (f"{c.adj} prime minister {full} survived a vote of no confidence in parliament {day}, winning the "
         f"support of {r.randint(151, 240)} lawmakers.", f"{c.head} prime minister survives confidence vote"),
        (f"{c.adj} opposition leader {full} was arrested {day} on charges of inciting violence, "
         f"{'his' if pron == 'he' else 'her'} lawyer said, calling the case \"politically motivated.\"",
         f"{c.head} opposition leader arrested"),
        (f"{c.adj} {minister} {full} said {day} the government had \"no plans\" to {r.choice(POLICIES)[0]} "
         f"{r.choice(POLICIES)[1]} this year.", f"{c.head} minister rules out policy change"),
    ]
    return r.choice(frames)


def ev_accident(r):
    c, day, reg = r.choice(COUNTRIES), on_day(r), r.choice(REGIONS)
    k = r.randint(3, 60)
    frames = [
        (f"A bus carrying {k + r.randint(5, 40)} passengers plunged into a ravine in {reg} {c.name} {day}, "
         f"killing at least {k} people, police said.", f"bus crash kills {k} in {c.head}"),
        (f"A fire at a {r.choice(FIRES)} in {c.city} killed {k} people early {day}, fire officials said.",
         f"fire kills {k} in {c.city}"),
        (f"A passenger train derailed near {c.city} {day}, killing {k} people and injuring "
         f"{k * r.randint(2, 6)} others, the railway ministry said.", f"train derailment kills {k} in {c.head}"),
        (f"A small plane crashed shortly after takeoff from {c.capital} airport {day}, killing all {k} people "
         f"on board, aviation officials said.", f"plane crash kills {k} in {c.head}"),
        (f"A ferry carrying {k * 4} people capsized off {c.poss('coast')} {day}, and rescuers pulled "
         f"{k * 2} survivors from the water.", f"ferry capsizes off {c.head}"),
    ]
    return r.choice(frames)


def ev_aid(r):
    c, donor = two(r, COUNTRIES)
    day, amount = on_day(r), money(r)
    frames = [
        (f"The World Bank {day} approved a {amount} loan to {c.name} to help finance {r.choice(PROJECTS)}.",
         f"World Bank approves loan for {c.head}"),
        (f"The International Monetary Fund said {day} it had reached agreement with {c.name} on a {amount} "
         f"loan program to support economic reforms.", f"IMF agrees loan for {c.head}"),
        (f"{donor.name} pledged {amount} in aid to {c.name} {day} to help rebuild areas hit by "
         f"floods.", f"aid pledged for {c.head} flood victims"),
    ]
    return r.choice(frames)


EVENTS = [ev_policy, ev_central_bank, ev_earnings, ev_merger, ev_election, ev_diplomacy, ev_soccer,
          ev_tennis, ev_disaster, ev_markets, ev_commodities, ev_strike, ev_statistics, ev_crime, ev_jobs,
          ev_politics, ev_accident, ev_aid]


def news_only(r):
    """A few sentence types that appear in news.txt only (quotes, forecasts, background)."""
    c, day, full = r.choice(COUNTRIES), r.choice(DAYS), person(r)[0]
    co = r.choice(COMPANIES)
    frames = [
        f"\"We are very pleased with the result,\" coach {full} told reporters after the match in {c.city}.",
        f"Forecasters said temperatures in {c.capital} would fall to {r.randint(-15, 5)} degrees Celsius by "
        f"{day}, with more snow expected in the mountains.",
        f"Analysts said the {c.adj} economy was likely to grow about {pct(r, 1, 7)} percent this year.",
        f"\"This is a difficult time for the company,\" {co.short} chairman {full} said in a statement.",
        f"The {c.adj} {r.choice(MINISTRIES)} ministry said it would publish new figures in {r.choice(MONTHS)}.",
        f"Rescue workers in {c.city} said they expected the death toll to rise as more bodies were found.",
        f"{full}, who took office in {r.randint(1995, 2009)}, has promised to create {whole(r, 10, 900)},000 "
        f"new jobs before the next election.",
        f"The {c.adj} team will play its next match against {r.choice(COUNTRIES).name} on {day}.",
        f"{full} will travel to {r.choice(COUNTRIES).capital} later this month, officials in {c.capital} said.",
        f"{co.short} employs about {whole(r, 2000, 90000)} people, most of them in {co.country.name}.",
        f"Traders said the market was likely to remain volatile until the {c.adj} central bank meets in "
        f"{r.choice(MONTHS)}.",
        f"The storm is expected to reach {c.city} by {day} evening, bringing winds of up to "
        f"{r.randint(90, 220)} kilometers per hour.",
    ]
    return r.choice(frames)


# ----------------------------------------------------------------------------------------------------
# Gigaword normalization: Penn Treebank tokens, lowercase, every digit -> '#'
# ----------------------------------------------------------------------------------------------------

_CLITICS = ("n't", "'s", "'re", "'ve", "'ll", "'m", "'d")


def ptb_tokens(text):
    """Treebank tokens of the template sentences (the same as nltk's word tokenizer on them, with
    parentheses as -LRB- / -RRB-)."""
    words = text.split()
    out = []
    for i, word in enumerate(words):
        last = i == len(words) - 1
        pre, post = [], []
        while word and word[0] in "\"($":
            pre.append({"\"": "``", "(": "-LRB-", "$": "$"}[word[0]])
            word = word[1:]
        while word and (word[-1] in ",;:?!\")" or (last and word[-1] == ".")):
            post.insert(0, {"\"": "''", ")": "-RRB-"}.get(word[-1], word[-1]))
            word = word[:-1]
        mid = [word] if word else []
        for clitic in _CLITICS:
            if word.lower().endswith(clitic) and len(word) > len(clitic):
                mid = [word[:-len(clitic)], word[-len(clitic):]]
                break
        else:
            if word.endswith("s'"):
                mid = [word[:-1], "'"]
        out.extend(pre + mid + post)
    return out


def gigaword_normalize(text):
    return re.sub(r"[0-9]", "#", " ".join(ptb_tokens(text)).lower())


def rare_words():
    """Words that may stand for a rare word: people's names, cities, the first word of a company's name."""
    words = {name.lower() for name in FIRST_M + FIRST_F + SURNAMES}
    for c in COUNTRIES:
        words.update(w.lower() for place in (c.capital, c.city) for w in place.split() if len(w) > 3)
    words.update(co.short.split()[0].lower() for co in COMPANIES)
    common = {w.lower() for c in COUNTRIES for w in c.name.split()}
    return words - common - {"city", "great", "southern", "orient", "york", "delhi"}


def make_pairs(r, n):
    seen, pairs = set(), []
    while len(pairs) < n:
        sentence, title = r.choice(EVENTS)(r)
        art, tit = gigaword_normalize(cap(sentence)), gigaword_normalize(title)
        if art in seen or not 15 <= len(art.split()) <= 40 or not 4 <= len(tit.split()) <= 12:
            continue
        seen.add(art)
        pairs.append([art, tit])
    return pairs


def add_unknown(r, pairs, count, marker, in_title):
    """Replace one rare word in ``count`` articles by ``marker`` (and in the title too when ``in_title``
    and the title has it); returns how many titles changed."""
    rare, titles = rare_words(), 0
    candidates = list(range(len(pairs)))
    r.shuffle(candidates)
    done = 0
    for i in candidates:
        if done == count:
            break
        art, tit = pairs[i]
        title_words = set(tit.split())
        options = [w for w in dict.fromkeys(art.split()) if w in rare and (in_title or w not in title_words)]
        if not options:
            continue
        word = r.choice(options)
        pairs[i][0] = " ".join(marker if w == word else w for w in art.split())
        if in_title and word in title_words:
            pairs[i][1] = " ".join(marker if w == word else w for w in tit.split())
            titles += 1
        done += 1
    return titles


# ----------------------------------------------------------------------------------------------------
# Cornell Movie-Dialogs: scripted exchanges with matching replies
# ----------------------------------------------------------------------------------------------------

MOVIES = {
    "m0": [("JENNY", "f"), ("MIKE", "m"), ("TOMMY", "m"), ("RACHEL", "f")],
    "m1": [("FRANK", "m"), ("NICKY", "m"), ("DETECTIVE SHAW", "m"), ("ROSE", "f")],
    "m2": [("EMMA", "f"), ("DANIEL", "m"), ("LUCY", "f"), ("HENRY", "m")],
    "m3": [("CAPTAIN REYES", "f"), ("KOWALSKI", "m"), ("DR. ADAMS", "f"), ("JONAH", "m")],
    "m4": [("WYATT", "m"), ("SHERIFF COLE", "m"), ("MAGGIE", "f"), ("EARL", "m")],
    "m5": [("SERGEANT MILLER", "m"), ("PARKER", "m"), ("DOC", "m"), ("LIEUTENANT HAYES", "m")],
    "m6": [("CLAIRE", "f"), ("SAM", "m"), ("MRS. WHITAKER", "f")],
    "m7": [("ALICE", "f"), ("GEORGE", "m"), ("KATIE", "f")],
}
GENRE = {"m0": "teen", "m1": "crime", "m2": "romance", "m3": "space", "m4": "western", "m5": "war",
         "m6": "horror", "m7": "family"}

PLACES = ["Joe's", "the diner", "the library", "the station", "the hospital", "my sister's place", "the lake",
          "the mall", "the office", "the bar on Fifth Street", "the motel", "the beach", "church", "the park"]
TOWN_PLACES = ["the station", "the hospital", "the library", "the post office", "Main Street", "the bus stop",
               "the Grand Hotel", "the museum", "the harbor"]
TIMES = ["tonight", "tomorrow", "this weekend", "on Saturday", "after work", "tomorrow night", "on Friday"]
ACTIVITIES = ["go to the movies", "get some dinner", "go to the beach", "see a ball game", "go dancing",
              "take a walk", "go for a drive", "have a drink", "go fishing", "see a play"]
CHORES = ["work late", "study for a test", "visit my mother", "fix the car", "finish a report",
          "pick up my brother", "clean the house", "go to a funeral"]
HOURS = ["six", "seven", "eight", "nine", "ten", "eleven", "noon", "midnight"]
CLOCK = ["six", "seven", "eight", "nine", "ten", "eleven", "two", "three", "four", "five"]
FOODS = ["pizza", "Chinese food", "sandwiches", "pancakes", "chicken", "soup", "tacos", "eggs", "spaghetti"]
JOBS = [("lawyer", "read contracts all day"), ("nurse", "work nights"), ("teacher", "grade papers"),
        ("writer", "stare at a blank page"), ("mechanic", "fix other people's cars"),
        ("cop", "fill out forms"), ("waitress", "carry plates"), ("accountant", "count other people's money"),
        ("photographer", "take pictures of weddings"), ("pilot", "sit in airports"),
        ("architect", "draw parking garages"), ("engineer", "go to meetings")]
OBJECTS = ["map", "money", "gun", "letter", "flashlight", "radio", "camera", "bag", "envelope", "key"]
SPOTS = ["car", "kitchen", "drawer", "glove box", "bedroom", "closet", "safe", "truck", "hall"]
NOISE_SPOTS = ["window", "door", "garage", "barn", "stairs", "basement", "attic"]
TASKS = ["these boxes", "my homework", "the car", "dinner", "this letter", "the dishes", "the tent"]
EVENTS_PERSONAL = ["last night", "the party", "your father", "what I said", "the car", "the wedding",
                   "your job", "your dog"]
THINGS = ["the money", "the house", "the baby", "the job offer", "your brother", "the letter", "the trip"]
SUMS = ["fifty", "a hundred", "two hundred", "five hundred", "a thousand"]
OUTLAWS = ["Dalton", "Carver", "McCready", "Slade", "Bishop"]
TOWNS = ["Abilene", "Tucson", "Dodge City", "El Paso", "Cheyenne"]

# A conversation is one path: a list of turns, each a list of interchangeable lines. Replies follow the
# line before them; a path may be cut after any turn past the first.
HELLO = ["Hi, {b}. How are you?", "Hey, {b}. How's it going?", "{b}! How have you been?",
         "Good morning, {b}. How are you?"]
FINE = ["I'm fine, thanks. And you?", "Not bad. How about you?", "Pretty good. You?",
        "Tired, but okay. And you?"]
WHERE = ["Where were you last night?", "Where have you been all day?", "Where did you go this morning?"]
FREE = ["What are you doing {t}?", "Are you busy {t}?", "Do you have any plans {t}?"]
NOT_MUCH = ["Nothing much. Why?", "I don't know yet. Why?", "Not really. Why?"]
INVITE = ["Do you want to {act} with me?", "I thought maybe we could {act}.", "Want to {act}?"]
WHO_CALLED = ["Who was that on the phone?", "Who called?"]
LEAVE = ["I have to go.", "I should get going.", "It's late. I'd better go."]
SORRY = ["I'm sorry about {ev}.", "{b}, I'm really sorry about {ev}."]
COMMON = [
    [HELLO, FINE, ["Can't complain.", "I'm good. Busy, but good.", "Same as always."],
     ["Glad to hear it.", "Good. That's good."]],
    [HELLO, FINE, ["I'm okay. Listen, do you have a minute?", "Fine. Listen, can we talk?"],
     ["Sure. What is it?", "Of course. What's wrong?"], ["It's about {c}.", "Not here. Let's take a walk."]],
    [["Hi, {b}.", "Hello, {b}.", "Hey, {b}."], ["Hi. Have you seen {c}?", "Hey. Is {c} with you?"],
     ["Not since this morning.", "No. Why?"], ["{He} was supposed to meet me at {place}.", "I need to talk to {him}."],
     ["Try {place}.", "{He} said something about going to {place}."]],
    [WHERE, ["I was at {place} with {c}.", "I went to {place}. Why?"],
     ["You said you'd be home by {hour}.", "I called you {num} times.", "I was worried about you."],
     ["I'm sorry. I lost track of time.", "My phone was dead.", "I'm sorry. It won't happen again."],
     ["Next time, call me.", "Just don't do it again.", "Okay. Forget it."]],
    [WHERE, ["That's none of your business.", "Why do you care?"], ["I'm just asking.", "Because I was worried."],
     ["Well, don't.", "I was out. That's all."], ["Fine.", "Whatever you say."]],
    [FREE, NOT_MUCH, INVITE, ["Sure. What time?", "I'd love to. When?", "Okay. When?"],
     ["How about {hour}?", "I'll pick you up at {hour}.", "Around {hour}. I'll call you."]],
    [FREE, NOT_MUCH, INVITE, ["I can't. I have to {chore}.", "Sorry, I promised {c} I'd help {him}."],
     ["Maybe next time, then.", "Okay. Some other time.", "Fine. I'll ask someone else."]],
    [["What time is it?", "Do you know what time it is?", "What time do you have?"],
     ["It's almost {clock}.", "A quarter past {clock}.", "Ten after {clock}.", "Half past {clock}."],
     ["We're going to be late.", "Come on, we're late."],
     ["Relax. We have plenty of time.", "Don't worry. We'll make it."]],
    [["What time is it?", "Do you know what time it is?"], ["It's almost {clock}.", "Half past {clock}."],
     ["Already? I have to go.", "Already? Where did the day go?"], ["So soon?", "Time flies."]],
    [["You lied to me, {b}.", "You lied to me!"],
     ["I didn't lie. I just didn't tell you everything.", "I didn't lie to you."],
     ["That's the same thing!", "Don't even try."],
     ["I was trying to protect you.", "I'm sorry. I didn't know what to do."],
     ["I don't need your protection.", "Sorry isn't good enough.", "Just get out."]],
    [["Why didn't you tell me about {thing}?", "When were you going to tell me about {thing}?"],
     ["I was going to tell you. I swear.", "I was waiting for the right moment."],
     ["When? After it was too late?", "There's never a right moment with you."], ["That's not fair.", "I'm sorry."],
     ["Don't talk to me about fair.", "Sorry doesn't fix anything."]],
    [["How could you do this to me?", "How could you do this?"], ["Do what?", "What are you talking about?"],
     ["Don't play dumb with me. I know about {thing}.", "You know exactly what I'm talking about."],
     ["Okay. I can explain.", "Who told you?"], ["I don't want to hear it.", "It doesn't matter who told me."]],
    [["Can you help me with {task}?", "Could you give me a hand with {task}?"],
     ["Sure. What do you need?", "Of course. What should I do?"],
     ["Just hold this for a second.", "Take the other end."], ["Okay. Like this?", "Like this?"],
     ["Perfect. Thanks.", "That's it. Thank you."]],
    [["Can you help me with {task}?", "Could you give me a hand with {task}?"],
     ["Not now. I'm busy.", "Ask {c}. I'm busy."], ["Fine. I'll do it myself.", "You're always busy."],
     ["Don't start with me.", "That's not true."]],
    [WHO_CALLED, ["It was {c}. {He} wants to meet us at {place}.", "{c}. {He} wants us at {place}."],
     ["When?", "Tonight?"], ["At {hour}. {He} said it's important.", "Right now. {He} said it's important."],
     ["Then we'd better go.", "Okay. I'll get the car."]],
    [WHO_CALLED, ["It was {c}. {He} wants to meet us at {place}."], ["What for?", "What does {he} want?"],
     ["{He} didn't say. {He} sounded scared.", "I don't know. {He} wouldn't tell me."],
     ["I don't like this.", "That's not like {him}."]],
    [["Are you hungry?", "Want something to eat?"], ["Starving. What do we have?", "A little. What is there?"],
     ["There's some {food} in the fridge.", "I can make {food}."], ["Sounds good.", "{Food} again?", "Perfect."]],
    [["Did you eat anything today?"], ["Not really. I wasn't hungry.", "Just some coffee."],
     ["You have to eat something.", "That's not enough."], ["Okay. Maybe some {food}.", "I'll eat later. I promise."]],
    [["Did you hear that?"], ["Hear what?", "I didn't hear anything."],
     ["A noise. It came from the {spot2}.", "Something outside. By the {spot2}."],
     ["It's probably just the wind."], ["That was not the wind.", "It didn't sound like the wind."]],
    [["Did you hear that?"], ["Hear what?", "I didn't hear anything."],
     ["A noise. It came from the {spot2}.", "Something outside. By the {spot2}."],
     ["You're imagining things."], ["I'm not imagining anything!", "I know what I heard."]],
    [["What was that?"], ["What was what?", "I didn't hear anything."],
     ["There's someone at the {spot2}.", "Somebody's outside."],
     ["Stay here. I'll go check.", "Stay here. I'll take a look."], ["I'm coming with you.", "Be careful."]],
    [["Can you lend me some money?", "I need a favor. I need some money."],
     ["How much do you need?", "How much?", "Again? How much this time?"],
     ["About {sum} dollars.", "Just {sum} dollars."], ["{Sum} dollars? What for?", "What do you need it for?"],
     ["I'll tell you later. I promise I'll pay you back.", "It's for rent."]],
    [["Can you lend me some money?", "Do you have any cash?"],
     ["No. You still owe me from last time.", "Not for you. You never pay me back."],
     ["I'll pay you back, I swear.", "Come on, just this once."], ["That's what you said last time."]],
    [["Do you love {him}?", "Are you in love with {c}?"], ["I don't know. Maybe.", "That's none of your business."],
     ["That's not an answer.", "I just want to know the truth."], ["It's complicated.", "The truth is, I don't know."]],
    [["Do you love me?"], ["Of course I do.", "You know I do."],
     ["Then why are you leaving?", "Then why won't you look at me?"],
     ["Because I'm scared.", "Because I don't know how to stay."]],
    [LEAVE, ["Already? When will I see you again?", "So soon? When will I see you again?"],
     ["Tomorrow. I promise.", "Soon. I'll call you."], ["Okay. Be careful.", "Okay. Good night.", "Drive safe."]],
    [LEAVE, ["Stay a little longer.", "Do you have to?"], ["I can't. I have an early day.", "I wish I could."],
     ["Okay. Good night.", "Then go. I'll see you tomorrow."]],
    [["So what do you do, {b}?", "What do you do for a living?", "So what kind of work do you do?"],
     ["I'm {art} {job}.", "I work as {art} {job}."],
     ["{Art} {job}? That must be interesting.", "Really? {Art} {job}? Do you like it?"],
     ["Not really. Mostly I just {jobtask}.", "It pays the bills. Mostly I {jobtask}."],
     ["Sounds like my job.", "Well, somebody has to do it."]],
    [SORRY, ["Forget it. It wasn't your fault.", "It's okay. Really."], ["I still feel terrible."],
     ["Don't. Really, it's okay.", "Don't. Let's not talk about it."]],
    [SORRY, ["You should be.", "Sorry doesn't fix anything."], ["I know. What can I do?", "I know. I said I'm sorry."],
     ["Just leave me alone for a while.", "Give me some time."]],
    [["Where's the {obj}?", "Have you seen the {obj}?"], ["It's in the {spot}.", "I put it in the {spot}."],
     ["I looked there already.", "It's not there."], ["Then somebody took it.", "Then somebody moved it."],
     ["Who would take it?", "Who would do that?"]],
    [["Where's the {obj}?", "Did you take the {obj}?"], ["I thought you had it.", "Don't look at me."],
     ["Well, I don't.", "Then who has it?"], ["Ask {c}. {He} had it last.", "How should I know?"]],
    [["Are you okay, {b}?", "Are you all right?"], ["I'm fine. I just need some sleep.", "I'm fine. Just tired."],
     ["You don't look fine.", "Are you sure?"], ["I said I'm fine.", "I don't want to talk about it."]],
    [["What's wrong?", "{b}, what's wrong?"], ["Nothing.", "It's nothing."],
     ["Come on. You can tell me.", "It doesn't look like nothing."], ["It's {c}. I think {he}'s in trouble."],
     ["What kind of trouble?", "What happened?"]],
    [["Do you want some coffee?", "Can I get you some coffee?"], ["Yes, please.", "Sure. Thanks."],
     ["Milk and sugar?", "How do you take it?"], ["Just black.", "A little milk, no sugar."]],
    [["Do you want a drink?", "Can I get you a beer?"], ["No, thanks. I'm driving.", "No, thanks. I just had one."],
     ["Suit yourself.", "Okay. Just ask if you change your mind."]],
    [["Excuse me, how do I get to {town}?", "Do you know where {town} is?"],
     ["Go straight two blocks and turn left.", "It's just around the corner."], ["Thank you.", "Thanks a lot."],
     ["You're welcome.", "No problem."]],
    [["Is it still raining?"], ["Yes. It's been coming down all day."],
     ["Then we're not going anywhere.", "Great. And I left my umbrella at {place}."],
     ["We could just stay in.", "You can borrow mine."]],
    [["Is it still raining?"], ["No, it stopped an hour ago."], ["Good. Let's go before it starts again."],
     ["Get your coat."]],
    [["You look great tonight.", "You look beautiful tonight."],
     ["Thank you. So do you.", "Thanks. You're not so bad yourself."],
     ["Shall we go?", "Ready to go?"], ["Let's go.", "Yes. Let's go."]],
    [["What's your name?", "I didn't catch your name."], ["{b}. What's yours?", "It's {b}. And you?"],
     ["{a}.", "I'm {a}."], ["Nice to meet you, {a}.", "Pleased to meet you."]],
    [["Thank you for everything, {b}.", "Thanks for your help today."], ["You're welcome.", "Don't mention it."],
     ["I mean it. I owe you one.", "I couldn't have done it without you."],
     ["Just buy me a drink sometime.", "That's what friends are for."]],
    [["What did the doctor say?", "Did you talk to the doctor?"], ["It's nothing serious. I just need rest."],
     ["Thank God.", "That's a relief."], ["I told you not to worry."]],
    [["What did the doctor say?", "Did you talk to the doctor?"], ["She wants to run more tests."],
     ["What kind of tests?", "More tests? Why?"], ["I don't know. She didn't say."]],
]
GENRE_PATHS = {
    "teen": [
        [["Are you going to the party on Friday?"], ["Is {c} going?"], ["Everybody's going."],
         ["Okay, I'll think about it.", "Fine. But you're driving."]],
        [["Are you going to the party on Friday?"], ["I wasn't invited."], ["Who cares? Just come with me."],
         ["My parents will kill me.", "Okay. But if it's lame, we leave."]],
        [["Did you finish the essay for Mr. Baker's class?"], ["What essay?"], ["The essay. It's due tomorrow."],
         ["Oh, no.", "Tomorrow? I'm dead."]],
        [["Will you go to the prom with me?"], ["Are you serious?"], ["Totally serious."], ["Okay. Yes."]],
    ],
    "crime": [
        [["Did you bring the money?", "You got the money?"], ["It's all there. {Num} thousand, like we agreed."],
         ["Count it."], ["You don't trust me?"], ["I don't trust anybody."]],
        [["Where's the money?"], ["I need more time."], ["You're out of time."],
         ["Just give me one more day."], ["One day. That's it."]],
        [["The cops were here."], ["What did they want?"], ["They were asking about {c}."],
         ["What did you tell them?"], ["Nothing. I swear."]],
        [["We do it tonight."], ["Tonight? We're not ready."], ["We don't have a choice."],
         ["Fine. But I'm driving."]],
    ],
    "space": [
        [["How much power do we have left?"], ["About {num} percent{sir}."], ["Enough to reach the station?"],
         ["If we're lucky."]],
        [["What's our status?"], ["Not good. The engines are overheating."], ["Can you fix it?"],
         ["Give me ten minutes."]],
        [["We're picking up a signal{sir}."], ["From where?"], ["The far side of the moon."],
         ["Put it on the screen."]],
        [["How long until we reach the station?"], ["About {num} hours."], ["Can we go any faster?"],
         ["Not without losing the shields."]],
    ],
    "western": [
        [["You're not from around here, are you?"], ["No, sir. I rode in from {oldtown} this morning."],
         ["What brings you to town?"], ["I'm looking for a man named {outlaw}."], ["We don't want any trouble here."]],
        [["Sheriff, there's trouble at the saloon."], ["What kind of trouble?"], ["The {outlaw} brothers are back."],
         ["Get my rifle."]],
        [["Where are you headed?"], ["West. To California."], ["That's a long way to go alone."],
         ["I've been alone before."]],
    ],
    "war": [
        [["How many men do we have left?"], ["{Num}, sir. Maybe less."], ["Tell them to hold the bridge until dawn."],
         ["Yes, sir."]],
        [["We move out at dawn."], ["Where are we going, sir?"], ["North. To the river."], ["Yes, sir."]],
        [["Any word from headquarters?"], ["No, sir. The radio's dead."], ["Keep trying."], ["Yes, sir."]],
        [["What's the situation, Sergeant?"], ["Bad, sir. They're coming over the ridge."],
         ["Then we fall back to the river."], ["Yes, sir."]],
    ],
    "horror": [
        [["Don't go down there."], ["Why not?"], ["Because I heard something."], ["Stay behind me."]],
        [["Did you lock the basement door?"], ["I thought you did."], ["Then who opened it?"],
         ["We're leaving. Now."]],
        [["Who's there?"], ["It's me. It's just me."], ["You scared me half to death."], ["Sorry."]],
    ],
    "romance": [
        [["I can't stop thinking about you."], ["You shouldn't say that."], ["Why not? It's the truth."],
         ["Because I'm engaged."]],
        [["Why did you come back?"], ["Because I missed you."], ["You left without a word."],
         ["I know. I was a fool."]],
        [["Marry me."], ["What?"], ["Marry me, {b}."], ["Yes. Yes!"]],
    ],
    "family": [
        [["Did you finish your homework?"], ["Almost."], ["Then no television until you do."], ["Okay, okay."]],
        [["Dinner's ready. Wash your hands."], ["I'm not hungry."], ["You have to eat something."], ["Fine."]],
        [["Can I go to {c}'s house?"], ["Did you clean your room?"], ["Almost."], ["Then the answer is no."]],
    ],
}


def conversation_slots(r, a, b, c, c_gender):
    job, jobtask = r.choice(JOBS)
    art = "an" if job[0] in "aeiou" else "a"
    num, total, food = r.choice(NUMBER_WORDS), r.choice(SUMS), r.choice(FOODS)
    he = "he" if c_gender == "m" else "she"
    return {"a": a, "b": b, "c": c, "he": he, "He": he.capitalize(), "him": "him" if he == "he" else "her",
            "place": r.choice(PLACES), "town": r.choice(TOWN_PLACES), "t": r.choice(TIMES),
            "act": r.choice(ACTIVITIES), "chore": r.choice(CHORES), "hour": r.choice(HOURS),
            "clock": r.choice(CLOCK), "num": num, "Num": num.capitalize(), "sum": total, "Sum": cap(total),
            "food": food, "Food": cap(food), "obj": r.choice(OBJECTS), "spot": r.choice(SPOTS),
            "spot2": r.choice(NOISE_SPOTS), "task": r.choice(TASKS), "job": job, "art": art, "Art": cap(art),
            "jobtask": jobtask, "ev": r.choice(EVENTS_PERSONAL), "thing": r.choice(THINGS),
            "outlaw": r.choice(OUTLAWS), "oldtown": r.choice(TOWNS),
            "sir": ", Captain" if a.startswith("Captain") else ""}


def make_cornell(r, n_conversations):
    chars, next_id = {}, 0
    for movie, cast in MOVIES.items():
        for name, gender in cast:
            chars.setdefault(movie, []).append((f"u{next_id}", name, gender))
            next_id += 1
    lines, convs, seen, line_no = [], [], set(), 1
    movies = sorted(MOVIES)
    while len(convs) < n_conversations:
        movie = movies[len(convs) % len(movies)]
        (ua, na, _), (ub, nb, _) = r.sample(chars[movie], 2)
        _, nc, gc = r.choice([x for x in chars[movie] if x[0] not in (ua, ub)])
        slots = conversation_slots(r, na.title(), nb.title(), nc.title(), gc)
        path = r.choice(GENRE_PATHS[GENRE[movie]] if r.random() < 0.3 else COMMON)
        turns = [r.choice(options).format(**slots) for options in path]
        turns = turns[:r.randint(2, min(5, len(turns)))]
        key = (movie, tuple(turns))
        if key in seen:
            continue
        seen.add(key)
        ids = []
        for k, text in enumerate(turns):
            uid, name = (ua, na) if k % 2 == 0 else (ub, nb)
            lid = f"L{line_no}"
            line_no += 1
            ids.append(lid)
            lines.append(f"{lid} +++$+++ {uid} +++$+++ {movie} +++$+++ {name} +++$+++ {text}")
        convs.append(f"{ua} +++$+++ {ub} +++$+++ {movie} +++$+++ [{', '.join(repr(i) for i in ids)}]")
    return lines, convs


# ----------------------------------------------------------------------------------------------------

def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    path.write_bytes(text.encode("ascii"))  # every file is pure ASCII: anything else fails here


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    p.add_argument("--seed", type=int, default=2024)
    args = p.parse_args(argv)
    r = random.Random(args.seed)

    # Gigaword pairs: one pool of distinct articles, split 600 / 60 / 80
    pairs = make_pairs(r, 740)
    train, valid, test = pairs[:600], pairs[600:660], pairs[660:]
    add_unknown(r, train, 18, "<unk>", in_title=False)
    add_unknown(r, valid, 2, "<unk>", in_title=False)
    test_titles = add_unknown(r, test, 8, "UNK", in_title=True)
    all_articles = [a for a, _ in pairs]
    assert len(set(all_articles)) == len(all_articles), "an article repeats across splits"
    giga = args.out / "gigaword"
    for path, rows, col in [("sumdata/train/train.article.txt", train, 0), ("sumdata/train/train.title.txt", train, 1),
                            ("sumdata/train/valid.article.filter.txt", valid, 0),
                            ("sumdata/train/valid.title.filter.txt", valid, 1),
                            ("Giga/input.txt", test, 0), ("Giga/task1_ref0.txt", test, 1)]:
        write(giga / path, [row[col] for row in rows])

    # news.txt: raw sentences from the same world, none equal to a Gigaword article
    news, seen = [], set(all_articles)
    while len(news) < 800:
        sentence = news_only(r) if r.random() < 0.15 else r.choice(EVENTS)(r)[0]
        sentence = cap(sentence)
        key = gigaword_normalize(sentence)
        if key in seen or not 8 <= len(sentence.split()) <= 35:
            continue
        seen.add(key)
        news.append(sentence)
    write(args.out / "news.txt", news)

    lines, convs = make_cornell(r, 300)
    write(args.out / "cornell" / "movie_lines.txt", lines)
    write(args.out / "cornell" / "movie_conversations.txt", convs)
    print(f"wrote {args.out}: {len(news)} news sentences, {len(train)}/{len(valid)}/{len(test)} Gigaword pairs "
          f"({test_titles} test titles with UNK), {len(convs)} conversations / {len(lines)} movie lines")


if __name__ == "__main__":
    main()
