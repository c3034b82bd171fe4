"""General English word lists the semantic cache's analysis and checks are built on.

Function words, politeness and request framing, negators, directed and symmetric
connectors, numbers, units, output formats. They name the language, never words picked from
an evaluation set.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


FUNCTION_WORDS = _words(
    """
    a an the is are was were be been being am do does did doing done have has had having
    i me my mine myself we us our ours you your yours he him his she her it its they them their
    this that these those there here what which who whom whose when where why how
    of in on at by for with about as into to from than then and or but if so such between
    can could would should will shall may might must ca wo ai any some all each also too very
    many much
    get gets got getting go goes going s t d ll re ve m
    whats hows wheres whos whens thats theres im ive youre
    during within through throughout across around via while until since among upon
    """
)
# Politeness, hedging and request framing: they change how a question is asked, not its answer.
DISCOURSE_WORDS = _words(
    """
    hi hello hey greetings thanks thank thx please kindly sorry bother quick question questions
    curious wondering wonder wondered help helping appreciated appreciate advance hope hoping okay
    ok exactly actually basically honestly dumb silly stupid stuck explain tell know let lot lots
    much cheers tips advice assist assistance anyone someone somebody just really maybe perhaps
    """
)
# How a request is framed rather than what it asks: "what's the best way to", "the purpose
# of", "explain", "tell me", copulas such as "look" and "seem". Set aside when the two
# questions' wordings are compared; they never carry a name, a number or a polarity.
FRAMING_WORDS = _words(
    """
    way ways method methods approach procedure process command commands technique
    best good proper correct recommended easiest simplest
    purpose function role meaning mean means definition define explain explanation describe
    refer refers
    description tell show give find figure thing things stuff something look looks appear
    appears seem seems want wanted able possible
    """
)
# Turns that say nothing to answer from a neighbour's answer: greetings, thanks, agreement.
ACKNOWLEDGEMENT_WORDS = _words(
    """
    yes yeah yep no nope sure fine great cool nice awesome perfect good morning afternoon
    evening night bye goodbye welcome lol haha wow hmm right alright done got understood
    everyone everybody folks sounds helped helps worked works later soon care one ones
    continue go ahead again more
    """
)
NEGATION_WORDS = _words(
    """
    not no never none nobody nothing nowhere neither nor cannot without non
    dont doesnt didnt cant wont isnt arent wasnt werent shouldnt wouldnt couldnt havent hasnt
    hadnt
    """
)
NEGATIVE_PREFIXES = ("non", "dis", "un", "in", "im", "il", "ir")
# Words that make the order of their neighbours meaningful ("A to B", "B into A"): the
# directed ones and the prepositions that mark a role ("animals that prey on wolves").
DIRECTION_CONNECTORS = _words(
    "to into from than onto toward towards over under after before of per on at by with for"
    " about against"
)
# Coordination is commutative: "a fruit or a vegetable" asks what "a vegetable or a fruit"
# does, "TCP and UDP" what "UDP and TCP" does.
SYMMETRIC_CONNECTORS = _words("and or nor versus vs between")
SPECIFIC_QUESTION_WORDS = _words("when why where who whom whose")
# Words that open a question of its own: a clause holding one asks for something.
INTERROGATIVE_WORDS = SPECIFIC_QUESTION_WORDS | _words("what which how")
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
    "million": 1_000_000, "billion": 1_000_000_000, "dozen": 12, "half": 0.5,
}  # fmt: skip
UNIT_ALIASES = {
    "km": "km", "kilometer": "km", "kilometre": "km", "mile": "mile", "mi": "mile",
    "meter": "m", "metre": "m", "m": "m", "cm": "cm", "mm": "mm", "foot": "ft", "feet": "ft",
    "ft": "ft", "inch": "in", "kg": "kg", "kilogram": "kg", "g": "g", "gram": "g", "lb": "lb",
    "lbs": "lb", "pound": "lb", "oz": "oz", "ounce": "oz", "mg": "mg", "milligram": "mg",
    "ml": "ml", "milliliter": "ml", "millilitre": "ml", "l": "l", "liter": "l", "litre": "l",
    "gallon": "gallon", "cup": "cup", "tablespoon": "tbsp", "tbsp": "tbsp", "teaspoon": "tsp",
    "tsp": "tsp", "f": "fahrenheit", "fahrenheit": "fahrenheit", "c": "celsius",
    "celsius": "celsius", "kelvin": "kelvin", "%": "percent", "percent": "percent",
    "$": "usd", "usd": "usd", "dollar": "usd", "€": "eur", "eur": "eur", "euro": "eur",
    "£": "gbp", "gbp": "gbp", "¥": "jpy", "yen": "jpy", "second": "s", "sec": "s",
    "minute": "min", "min": "min", "hour": "h", "hr": "h", "day": "day", "week": "week",
    "month": "month", "year": "year", "gb": "gb", "mb": "mb", "kb": "kb", "tb": "tb",
    "ghz": "ghz", "mhz": "mhz", "mph": "mph", "kph": "kph", "calorie": "kcal", "kcal": "kcal",
    "bit": "bit", "byte": "byte", "x": "times",
}  # fmt: skip
# Scales and currencies change the answer wherever they appear, not only next to a number.
MEASUREMENT_SYSTEMS = _words("fahrenheit celsius kelvin usd eur gbp jpy")
FORMAT_TERMS = {
    # length and depth
    "short": "length:short", "brief": "length:short", "briefly": "length:short",
    "concise": "length:short", "concisely": "length:short", "tldr": "length:short",
    "detailed": "length:long", "detail": "length:long", "thorough": "length:long",
    "comprehensive": "length:long", "depth": "length:long", "elaborate": "length:long",
    "sentence": "shape:sentence", "paragraph": "shape:paragraph", "word": "shape:words",
    # shape
    "list": "shape:list", "bullet": "shape:bullets", "numbered": "shape:numbered",
    "table": "shape:table", "json": "shape:json", "yaml": "shape:yaml", "xml": "shape:xml",
    "markdown": "shape:markdown", "html": "shape:html", "outline": "shape:outline",
    "diagram": "shape:diagram", "chart": "shape:chart", "code": "shape:code",
    "step": "shape:steps", "summary": "shape:summary", "summarize": "shape:summary",
    "summarise": "shape:summary",
    # genre
    "tweet": "genre:tweet", "email": "genre:email", "essay": "genre:essay", "poem": "genre:poem",
    "haiku": "genre:haiku", "letter": "genre:letter", "blog": "genre:blog",
    "article": "genre:article", "story": "genre:story", "song": "genre:song",
    "memo": "genre:memo", "slogan": "genre:slogan", "headline": "genre:headline",
    "recipe": "genre:recipe", "itinerary": "genre:itinerary", "test": "genre:tests",
    "pytest": "genre:tests", "unittest": "genre:tests",
    # programming languages
    "python": "lang:python", "javascript": "lang:javascript", "js": "lang:javascript",
    "typescript": "lang:typescript", "ts": "lang:typescript", "java": "lang:java",
    "go": "lang:go", "golang": "lang:go", "rust": "lang:rust", "ruby": "lang:ruby",
    "php": "lang:php", "c": "lang:c", "c++": "lang:cpp", "cpp": "lang:cpp", "c#": "lang:csharp",
    "csharp": "lang:csharp", "kotlin": "lang:kotlin", "swift": "lang:swift", "sql": "lang:sql",
    "bash": "lang:bash", "shell": "lang:bash", "powershell": "lang:powershell", "r": "lang:r",
    "scala": "lang:scala", "haskell": "lang:haskell", "perl": "lang:perl", "lua": "lang:lua",
    "dart": "lang:dart", "matlab": "lang:matlab", "elixir": "lang:elixir",
    # natural languages of the answer
    "english": "human:english", "spanish": "human:spanish", "french": "human:french",
    "german": "human:german", "italian": "human:italian", "portuguese": "human:portuguese",
    "chinese": "human:chinese", "japanese": "human:japanese", "korean": "human:korean",
    "russian": "human:russian", "arabic": "human:arabic", "hindi": "human:hindi",
    "dutch": "human:dutch",
    # audience
    "beginner": "audience:beginner", "novice": "audience:beginner", "expert": "audience:expert",
    "child": "audience:child", "kid": "audience:child", "eli5": "audience:child",
    "layman": "audience:beginner", "technical": "audience:expert",
    "advanced": "audience:expert",
}  # fmt: skip
# Format words that are as often ordinary nouns or verbs: they ask for a format only after a
# number, a preposition of manner or a verb of writing ("in one sentence", "as a list",
# "with a code example", "write a letter").
FORMAT_NOUNS = _words(
    "list step word sentence paragraph line code table chart diagram outline test letter"
)
FORMAT_PREPOSITIONS = _words("in as into under within using with")
FORMAT_VERBS = _words("write draft compose give make create produce generate prepare draw")
ORDINAL_WORDS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip
# "go" and "c" are verbs/letters more often than languages: only count them after "in"/"using".
AMBIGUOUS_LANGUAGES = frozenset({"go", "c", "r", "swift", "rust", "shell", "ts", "js"})
