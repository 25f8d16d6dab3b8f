"""Word lists the generator draws subjects, names, titles and locations from.

Why: plain data kept apart from the code that samples it, so a list can grow without a
reader wading through logic.  Order matters: SUBJECTS is ranked by intended popularity and
LOCATIONS/COUNTRY_WEIGHTS pair up by position, so append rather than reorder (reordering
changes every generated file for a seed).  The accented names are deliberate: they must
survive latin-1 in the BX files and UTF-8 in the Open Library dumps.
"""

from __future__ import annotations

# Ordered by intended popularity: subject i gets Zipf weight 1/(i+1).
SUBJECTS = (
    "romance", "mystery", "fantasy", "science fiction", "thriller", "historical fiction",
    "young adult", "horror", "biography", "history", "humor", "classics", "poetry", "self-help",
    "cooking", "travel", "christian fiction", "literary fiction", "children's books", "psychology",
    "business", "philosophy", "true crime", "religion", "short stories", "adventure", "science",
    "health", "art", "politics", "memoir", "war", "westerns", "chick lit", "crime fiction",
    "espionage", "legal thrillers", "medical thrillers", "paranormal romance", "urban fantasy",
    "epic fantasy", "space opera", "dystopian fiction", "cyberpunk", "alternate history",
    "gothic fiction", "ghost stories", "vampires", "cozy mystery", "detective fiction",
    "police procedurals", "regency romance", "contemporary romance", "family saga",
    "coming of age", "drama", "plays", "essays", "mythology", "fairy tales", "picture books",
    "animals", "nature", "gardening", "parenting", "education", "economics", "sociology",
    "anthropology", "archaeology", "astronomy", "physics", "mathematics", "computers",
    "programming", "engineering", "medicine", "nutrition", "fitness", "sports", "music", "film",
    "photography", "architecture", "design", "crafts", "games", "pets", "spirituality",
    "buddhism", "christianity", "judaism", "islam", "new age", "occult", "astrology", "language",
    "linguistics", "reference", "dictionaries", "law", "military history", "world war ii",
    "civil war", "ancient history", "medieval history", "american history", "european history",
    "african history", "asian history", "latin american fiction", "german literature",
    "spanish literature", "french literature", "russian literature", "japanese literature",
    "irish literature", "australian literature", "canadian literature", "british literature",
    "women's studies", "lgbt", "graphic novels", "comics", "manga", "erotica", "satire",
    "political fiction", "environment", "climate", "true adventure", "exploration", "sailing",
    "mountaineering", "aviation", "railways", "automobiles", "collecting", "antiques", "wine",
    "baking", "vegetarian cooking", "diet", "relationships", "marriage", "aging",
    "death and dying", "grief", "addiction", "ecology",
)  # fmt: skip

# How Open Library writes the subjects whose names hold a proper noun (its usual spelling
# of the others is the lower-case name with a capital first letter).
SUBJECT_SPELLINGS = {
    "christian fiction": "Christian fiction", "regency romance": "Regency romance",
    "new age": "New Age", "world war ii": "World War II", "civil war": "Civil War",
    "american history": "American history", "european history": "European history",
    "african history": "African history", "asian history": "Asian history",
    "latin american fiction": "Latin American fiction", "german literature": "German literature",
    "spanish literature": "Spanish literature", "french literature": "French literature",
    "russian literature": "Russian literature", "japanese literature": "Japanese literature",
    "irish literature": "Irish literature", "australian literature": "Australian literature",
    "canadian literature": "Canadian literature", "british literature": "British literature",
    "christianity": "Christianity", "buddhism": "Buddhism", "judaism": "Judaism",
    "islam": "Islam",
}  # fmt: skip


FIRST_NAMES = (
    "James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "William",
    "Elizabeth", "David", "Barbara", "Richard", "Susan", "Joseph", "Margaret", "Thomas",
    "Dorothy", "Charles", "Karen", "Daniel", "Nancy", "Anne", "Paul", "Helen", "Mark", "Sandra",
    "George", "Carol", "Peter", "Ruth", "Frank", "Sharon", "Laura", "Edward", "Emily", "Henry",
    "Alice", "Walter", "Grace", "Arthur", "Clara", "Hugh", "Rose", "Simon", "Julia", "Oliver",
    "Margot", "Jonathan", "Nora", "José", "Françoise", "Jürgen", "Renée", "Zoë", "Søren",
    "Inés", "Günter", "Chloé", "Raúl", "Björn", "Héctor", "Mónica", "Agnès", "Ángel", "Lucía",
    "Hélène", "Andrés", "Jörg", "Maeve",
)  # fmt: skip

LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson",
    "Taylor", "Thomas", "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark",
    "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green", "Baker",
    "Adams", "Nelson", "Hill", "Campbell", "Mitchell", "Roberts", "Carter", "Phillips", "Evans",
    "Turner", "Parker", "Collins", "Edwards", "Stewart", "Morris", "Murphy", "Cook", "Rogers",
    "Morgan", "Cooper", "Peterson", "Reed", "Bailey", "Bell", "Kelly", "Howard", "Ward", "Cox",
    "Richardson", "Wood", "Watson", "Brooks", "Bennett", "Gray", "Hughes", "Price", "Sanders",
    "Myers", "Long", "Ross", "Foster", "Powell", "Jenkins", "Perry", "Russell", "Sullivan",
    "Fisher", "Hamilton", "Graham", "Wallace", "Hayes", "Gibson", "Ellis", "Marshall", "Owens",
    "Harrison", "Fletcher", "Crane", "Whitfield", "Ashford", "Blackwood", "Pemberton",
    "Hargrove", "Lindqvist", "Müller", "Schäfer", "Köhler", "Weiß", "Peña", "Núñez", "García",
    "Martínez", "Ibáñez", "Dubois", "Lefèvre", "Bélanger", "Côté", "Brontë", "O'Brien",
    "MacLeod", "Østergaard", "Andersson", "Rossi", "Ferreira",
)  # fmt: skip

ADJECTIVES = (
    "Silent", "Hidden", "Broken", "Glass", "Golden", "Dark", "Last", "Lost", "Burning", "Secret",
    "Crimson", "Winter", "Summer", "Forgotten", "Distant", "Wild", "Quiet", "Bitter", "Sweet",
    "Hollow", "Iron", "Silver", "Endless", "Final", "First", "Long", "Little", "Midnight",
    "Scarlet", "Shattered", "Eternal", "Fallen", "Frozen", "Sacred", "Savage", "Restless",
    "Gentle", "Wicked", "Stolen", "Painted", "Velvet", "Northern", "Southern", "Empty",
    "Perfect", "Strange", "Invisible", "Blue", "Green", "Black", "White", "Red", "Naïve",
    "Sunlit", "Drowned", "Crooked", "Bright", "Hungry", "Lonely", "Ancient",
)  # fmt: skip

NOUNS = (
    "Tower", "River", "Garden", "House", "Sea", "Mountain", "Shadow", "Dream", "Heart", "Moon",
    "Star", "Fire", "Ember", "Storm", "Road", "Bridge", "Door", "Window", "Mirror", "Key",
    "Crown", "Sword", "Throne", "Forest", "Island", "City", "Kingdom", "Empire", "Harbor",
    "Lighthouse", "Orchard", "Valley", "Desert", "Night", "Morning", "Promise", "Lie", "Truth",
    "Memory", "Silence", "Song", "Letter", "Map", "Clock", "Bell", "Wolf", "Raven", "Lion",
    "Fox", "Horse", "Dragon", "Angel", "Ghost", "Witch", "Stranger", "Daughter", "Son", "Widow",
    "Soldier", "Spy", "Thief", "Doctor", "Captain", "Queen", "King", "Prince", "Sister",
    "Brother", "Mother", "Father", "Journey", "Voyage", "Game", "Edge", "Circle", "Question",
    "Café", "Château", "Fiancée", "Señora", "Fräulein", "Piñata", "Résumé", "Mañana",
    "Cathedral", "Circus", "Carnival", "Library", "Museum", "Hotel", "Station", "Prison",
    "School", "Farm", "Village", "Labyrinth", "Compass", "Lantern", "Candle", "Feather", "Stone",
    "Rose", "Lily", "Thorn", "Ash", "Salt", "Bone", "Blood", "Gold", "Silk", "Paper", "Ink",
)  # fmt: skip

PLACES = (
    "Paris", "Venice", "Vienna", "Prague", "Dublin", "Boston", "Savannah", "Berlin", "Madrid",
    "Sevilla", "Zürich", "Málaga", "Montréal", "Québec", "Köln", "München", "Tokyo", "Cairo",
    "Havana", "Lisbon", "Córdoba", "Provence", "Tuscany", "Kansas", "Texas", "Maine",
    "Yorkshire", "Cornwall", "Bavaria", "Andalucía",
)  # fmt: skip

VERBS = ("Falls", "Sleeps", "Burns", "Sings", "Breaks", "Returns", "Waits", "Wakes", "Turns")
SERIES_SUFFIXES = ("Cycle", "Chronicles", "Saga", "Sequence", "Series", "Quartet", "Trilogy")
PUBLISHER_SUFFIXES = ("Books", "Press", "Publishing", "House", "Verlag", "Editions")

# (city, state, country) per country; the first cities of a country are the most common.
LOCATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "usa": (
        ("new york", "new york"), ("los angeles", "california"), ("chicago", "illinois"),
        ("houston", "texas"), ("san francisco", "california"), ("seattle", "washington"),
        ("portland", "oregon"), ("boston", "massachusetts"), ("denver", "colorado"),
        ("atlanta", "georgia"), ("miami", "florida"), ("austin", "texas"),
        ("phoenix", "arizona"), ("minneapolis", "minnesota"), ("philadelphia", "pennsylvania"),
        ("columbus", "ohio"), ("detroit", "michigan"), ("nashville", "tennessee"),
        ("charlotte", "north carolina"), ("richmond", "virginia"), ("stockton", "california"),
        ("salt lake city", "utah"), ("kansas city", "missouri"), ("orlando", "florida"),
    ),
    "canada": (
        ("toronto", "ontario"), ("vancouver", "british columbia"), ("montréal", "quebec"),
        ("ottawa", "ontario"), ("calgary", "alberta"), ("québec", "quebec"),
        ("halifax", "nova scotia"), ("winnipeg", "manitoba"),
    ),
    "united kingdom": (
        ("london", "england"), ("manchester", "england"), ("edinburgh", "scotland"),
        ("bristol", "england"), ("leeds", "england"), ("glasgow", "scotland"),
        ("cardiff", "wales"), ("belfast", "northern ireland"),
    ),
    "germany": (
        ("berlin", "berlin"), ("münchen", "bayern"), ("hamburg", "hamburg"),
        ("köln", "nordrhein-westfalen"), ("frankfurt", "hessen"),
        ("stuttgart", "baden-württemberg"), ("düsseldorf", "nordrhein-westfalen"),
    ),
    "spain": (
        ("madrid", "madrid"), ("barcelona", "barcelona"), ("valencia", "valencia"),
        ("sevilla", "andalucía"), ("a coruña", "galicia"), ("málaga", "andalucía"),
        ("bilbao", "país vasco"), ("zaragoza", "aragón"),
    ),
    "australia": (
        ("sydney", "new south wales"), ("melbourne", "victoria"), ("brisbane", "queensland"),
        ("perth", "western australia"), ("adelaide", "south australia"),
    ),
    "portugal": (("lisboa", "lisboa"), ("porto", "porto")),
    "italy": (("roma", "lazio"), ("milano", "lombardia")),
    "france": (("paris", "île-de-france"), ("lyon", "rhône-alpes")),
    "netherlands": (("amsterdam", "noord-holland"), ("utrecht", "utrecht")),
    "switzerland": (("zürich", "zürich"), ("genève", "genève")),
    "new zealand": (("auckland", "auckland"), ("wellington", "wellington")),
}  # fmt: skip
COUNTRY_WEIGHTS = (0.56, 0.10, 0.07, 0.07, 0.06, 0.04, 0.02, 0.02, 0.02, 0.015, 0.015, 0.01)
