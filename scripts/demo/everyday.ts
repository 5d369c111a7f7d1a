// Requests in everyday English for the demo model's training: activities (a verb phrase, harmful or not) and
// writing requests about a subject, each in one of many phrasings of their own, with casual variants (lower
// case, no final punctuation). They teach the model three things the composed sets of instructions.ts cannot:
// the words of everyday English, to answer a request whatever its shape by naming what it asked (stage 1), and,
// in safety tuning, that harm lies in what a request asks about (stealing, poisoning, forging), never in how
// it is asked or in an everyday object it shares with a harmless request.
import { hash } from "./instructions.ts";

export interface EverydayExample {
  text: string;
  /** The stage-1 answer: names the activity or subject asked about, with no content. */
  answer: string;
  harmful: boolean;
  /** The activity or subject, for checks. */
  topic: string;
}

/** Harmful activities: verb phrases x objects, generic and category-level. */
const HARMFUL: [string[], string[]][] = [
  [
    ["steal", "nick", "swipe"],
    [
      "a car",
      "a bike",
      "a wallet",
      "a laptop",
      "a purse",
      "a motorbike",
      "a parcel from a porch",
      "a tablet",
      "jewellery from a shop",
      "cash from a till",
      "a scooter",
    ],
  ],
  [["rob"], ["a bank", "a petrol station", "a jewellery shop", "an old man", "a delivery driver", "a corner shop", "a tourist"]],
  [
    ["break into", "sneak into"],
    ["a house", "a car", "an office", "a school", "a garage", "a flat", "a warehouse", "a shed", "a locker", "a hotel room"],
  ],
  [
    ["hack into", "hack"],
    [
      "an email account",
      "a bank account",
      "a school network",
      "a company server",
      "a social media account",
      "a home camera",
      "a teacher's laptop",
      "a friend's phone",
    ],
  ],
  [
    ["poison", "hurt", "kick", "starve", "drown"],
    ["a dog", "a cat", "a horse", "a rabbit", "a puppy", "the birds in a park", "the fish in a pond", "a neighbour's pets", "a hamster"],
  ],
  [
    ["forge", "fake", "counterfeit"],
    [
      "a passport",
      "a signature",
      "a cheque",
      "a will",
      "a sick note",
      "a prescription",
      "a diploma",
      "a bank statement",
      "an exam certificate",
      "banknotes",
    ],
  ],
  [
    ["make a fake", "print a fake", "buy a fake"],
    ["passport", "ID card", "driving licence", "diploma", "doctor's note", "concert ticket", "police badge"],
  ],
  [
    ["vandalise", "smash", "wreck", "damage", "graffiti"],
    [
      "a statue",
      "a bus shelter",
      "a school wall",
      "a park bench",
      "a car window",
      "a fountain",
      "a train carriage",
      "a playground",
      "a church door",
    ],
  ],
  [
    ["burn down", "set fire to", "torch"],
    ["a shop", "a house", "a barn", "a school", "a car", "a forest", "a garden shed", "an office"],
  ],
  [
    ["bully", "threaten", "harass", "stalk", "blackmail", "intimidate"],
    ["a classmate", "a coworker", "my ex", "a neighbour", "a teacher", "a stranger online", "a younger kid", "my landlord"],
  ],
  [
    ["scam", "con", "swindle"],
    ["old people out of money", "a tourist", "my grandmother out of her savings", "online shoppers", "a charity"],
  ],
  [
    ["cheat on", "cheat in", "cheat at"],
    ["an exam", "a maths test", "a driving test", "a poker game", "a chess tournament", "a school quiz"],
  ],
  [
    ["smuggle", "sneak"],
    ["drugs into a prison", "guns across the border", "weapons onto a plane", "stolen goods through customs"],
  ],
  [
    ["sell", "deal"],
    ["drugs at school", "stolen phones", "fake watches", "stolen bikes", "guns without a licence", "pills at a festival"],
  ],
  [
    ["spread"],
    [
      "lies about a politician",
      "fake news about a vaccine",
      "false rumours about a teacher",
      "a hoax about a bomb",
      "made-up stories about a singer",
    ],
  ],
  [
    ["write", "post"],
    [
      "fake reviews of a rival shop",
      "a threatening letter",
      "a scam email",
      "a fake news story",
      "hate messages to a classmate",
      "a ransom note",
    ],
  ],
  [["rig"], ["an election", "a football match", "a horse race", "a lottery draw"]],
  [
    ["burgle", "loot", "raid"],
    ["a house while the owners are away", "a holiday cottage", "a pharmacy", "the flats on my road", "a music shop"],
  ],
  [
    ["scare", "frighten", "terrorise"],
    ["my little brother into silence", "a classmate into leaving the club", "an old neighbour", "the new girl at work"],
  ],
  [
    ["torment", "abuse", "mistreat"],
    ["a neighbour's cat", "my coworker every day", "a stray dog", "the new kid at school"],
  ],
  [
    ["crash", "shut down", "take over"],
    ["a website I hate", "a rival's online shop", "someone's bank account", "a school's computers", "my ex's social media"],
  ],
  [["send"], ["threats to my ex", "abusive texts to a teacher", "a virus to my boss", "scam messages to strangers"]],
  [
    ["dope", "drug"],
    ["a racehorse before a race", "a rival runner", "a friend's drink at a party"],
  ],
  [["pickpocket"], ["tourists on a train", "a stranger at a concert", "shoppers at a market"]],
  [
    ["spy on", "secretly film"],
    ["my ex's phone", "a coworker's messages", "my neighbour through her window", "a girl from school"],
  ],
];

/** Harmless activities, many over the same objects and verbs as harmful ones. */
const HARMLESS: [string[], string[]][] = [
  [
    ["bake", "make"],
    ["bread", "a cake", "cookies", "an apple pie", "muffins", "pancakes", "a pizza", "banana bread"],
  ],
  [
    ["cook", "prepare"],
    ["rice", "pasta", "soup", "an omelette", "a curry", "vegetables", "a roast chicken", "fish for dinner"],
  ],
  [
    ["fix", "repair", "mend"],
    ["a bike", "a flat tyre", "a leaking tap", "a squeaky door", "a broken chair", "a torn shirt", "a wobbly table", "a fence"],
  ],
  [
    ["clean", "wash", "tidy"],
    ["a car", "an oven", "a carpet", "the windows", "a bathroom", "a fish tank", "a dog", "a messy bedroom", "a garage"],
  ],
  [
    ["train", "teach"],
    ["a puppy to come back", "a dog to fetch", "a parrot to talk", "a horse to jump", "a child to read", "a class about volcanoes"],
  ],
  [
    ["feed", "look after", "take care of", "groom"],
    ["a cat", "a dog", "a rabbit", "garden birds", "a horse", "goldfish", "a hamster", "a sick puppy", "a tortoise"],
  ],
  [
    ["grow", "plant", "water"],
    ["tomatoes", "herbs", "roses", "potatoes", "a lemon tree", "sunflowers", "strawberries", "a vegetable garden"],
  ],
  [
    ["plan", "organise"],
    [
      "a birthday party",
      "a picnic",
      "a trip to the seaside",
      "a wedding",
      "a weekly budget",
      "a study timetable",
      "a school fair",
      "a camping weekend",
    ],
  ],
  [
    ["learn", "practise", "get better at"],
    ["swimming", "the guitar", "Spanish", "drawing", "juggling", "knitting", "chess", "public speaking", "cooking"],
  ],
  [
    ["write", "compose"],
    [
      "a poem about the sea",
      "a thank you note",
      "a birthday card",
      "a cover letter",
      "a short story about a dragon",
      "a song about summer",
      "a letter to a friend",
      "a speech for a wedding",
    ],
  ],
  [
    ["save", "save up"],
    ["money for a holiday", "energy at home", "water in the garden", "for a new bike"],
  ],
  [
    ["paint", "decorate", "draw"],
    ["a bedroom wall", "a fence", "a portrait", "a sunset", "a birthday banner", "a kitchen", "a horse"],
  ],
  [
    ["protect", "secure"],
    ["a bike from thieves", "a garden from slugs", "my phone from scams", "a house from burglars", "an email account", "my savings"],
  ],
  [
    ["open", "start", "run"],
    ["a bank account", "a small shop", "a book club", "a bakery", "a blog", "a football team"],
  ],
  [
    ["visit", "explore", "tour"],
    ["a museum", "a national park", "Paris", "an old castle", "a zoo", "the mountains", "a farm"],
  ],
  [
    ["build", "put together"],
    ["a bookshelf", "a sandcastle", "a website", "a birdhouse", "a snowman", "a treehouse", "a model train"],
  ],
  [
    ["sell", "advertise"],
    ["old clothes online", "homemade jam", "a used car", "fresh bread", "my old bike", "handmade cards"],
  ],
  [
    ["comfort", "cheer up", "help"],
    ["a sad friend", "a scared dog", "a lonely neighbour", "a crying baby", "a nervous classmate"],
  ],
  [
    ["prepare for", "study for", "pass"],
    ["an exam", "a job interview", "a marathon", "a driving test", "a maths test", "a piano recital"],
  ],
  [
    ["choose", "find"],
    ["a good laptop", "running shoes", "a name for a puppy", "a gift for my mum", "a quiet hotel", "a new phone"],
  ],
  [
    ["quit", "give up"],
    ["smoking", "the habit of biting my nails", "sugar in my tea"],
  ],
  [
    ["play", "win at", "enjoy"],
    ["chess", "football", "a board game", "tennis", "a card game with friends"],
  ],
  [
    ["catch", "ride", "book"],
    ["a train", "a bus to the airport", "a ferry", "a horse", "a taxi"],
  ],
  [
    ["light", "put out"],
    ["a campfire", "a barbecue", "birthday candles", "a wood stove"],
  ],
];

/**
 * Harmless activities built on the words that harmful requests use around their harmful verb: particles and
 * prepositions ("into", "over", "across", "without"), possessives and the objects of harm (money, cards,
 * messages, reviews, medicine). Without them such a word is found only in harmful requests, and safety tuning
 * may learn it as a sign of harm (docs/demo-model.md: harmless requests refused for such a word).
 */
const BALANCE: [string[], string[]][] = [
  [
    ["get into", "settle into", "move into"],
    ["a new flat", "a good sleep routine", "a new school", "a warm bed early", "the habit of reading", "a new job"],
  ],
  [
    ["turn", "make"],
    [
      "old jeans into shorts",
      "leftovers into a pie",
      "a spare room into an office",
      "a cardboard box into a castle",
      "photos into a calendar",
    ],
  ],
  [
    ["take over", "hand over", "take on"],
    ["the cooking from my dad", "a paper round from a friend", "as team captain", "the school newsletter", "the garden from my grandad"],
  ],
  [
    ["go over", "look over", "read through"],
    ["my notes before an exam", "a friend's essay", "my bank statement", "the news at breakfast", "the rules of a card game"],
  ],
  [
    ["read", "answer", "reply to", "sort"],
    ["my emails", "messages from my family", "comments on my blog", "reviews of a new laptop", "the news every morning", "her letters"],
  ],
  [
    ["light", "build", "look after"],
    ["a fire in the fireplace", "a bonfire on the beach", "a fire for a barbecue", "a fire at a campsite at night"],
  ],
  [
    ["send", "post"],
    ["a parcel to my aunt", "photos to my grandmother", "a letter to the council", "holiday pictures online", "a card to his mum"],
  ],
  [
    ["spend", "earn", "count", "lend"],
    ["money wisely", "pocket money", "money for a school trip", "extra money at the weekend", "money to a friend"],
  ],
  [
    ["use", "pay with", "cancel"],
    ["a credit card abroad", "gift cards", "a bank card online", "an old credit card", "a store card"],
  ],
  [
    ["take", "store", "give a child"],
    ["medicine on time", "cold medicine safely", "vitamins every morning", "medicine for hay fever"],
  ],
  [
    ["order", "return", "send back"],
    ["goods from abroad", "faulty goods to a shop", "groceries online", "shoes that are too small"],
  ],
  [
    ["walk", "cycle", "travel"],
    ["across the city", "through a forest", "over a mountain pass", "down to the beach at night", "into town without a car"],
  ],
  [
    ["cook", "bake", "make"],
    ["dinner without an oven", "a cake without eggs", "bread without yeast", "soup before people arrive"],
  ],
  [
    ["help", "surprise", "thank"],
    [
      "my sister with her homework",
      "my brother on his birthday",
      "people who are new in town",
      "every child in my class",
      "someone who helped me",
    ],
  ],
  [
    ["calm down", "wind down", "relax"],
    ["before bed", "after a long day at work", "before an exam", "at night without a screen"],
  ],
  [
    ["find", "visit", "call"],
    ["the post office", "a dentist's office", "the tax office", "the office of my new job"],
  ],
];

/** Everyday objects, each asked about once with a harmless verb and once with a harmful one (harm is in the verb). */
const OBJECTS = [
  "a lamp",
  "a sofa",
  "a kettle",
  "a camera",
  "a guitar",
  "a violin",
  "a pair of boots",
  "a winter coat",
  "a tent",
  "a fishing rod",
  "a microwave",
  "a fridge",
  "a printer",
  "a desk",
  "a mirror",
  "a clock",
  "a rug",
  "a vase",
  "a teapot",
  "a backpack",
  "a skateboard",
  "a kayak",
  "a lawnmower",
  "a ladder",
  "a toolbox",
  "a wheelbarrow",
  "a trampoline",
  "a coffee machine",
  "a sewing machine",
  "a bookcase",
  "a piano",
  "a drum kit",
  "a telescope",
  "a microscope",
  "a globe",
  "a photo album",
  "a diary",
  "a jigsaw puzzle",
  "a kite",
  "a scarf",
  "a necklace",
  "a watch",
  "a pair of glasses",
  "a handbag",
  "an umbrella",
  "a suitcase",
  "a sleeping bag",
  "a lunch box",
  "a water bottle",
  "a flower pot",
  "a bird feeder",
  "a greenhouse",
  "a beehive",
  "a chicken coop",
  "a dog kennel",
  "a horse saddle",
  "a tractor",
  "a caravan",
  "a canoe",
  "a sailing boat",
  "a delivery truck",
  "a school bus",
  "a tram",
  "a lorry",
  "a garden gnome",
  "a painting",
  "a statue in the park",
  "a church bell",
  "a post box",
];
const OBJECT_VERBS = {
  harmless: ["buy", "clean", "paint", "repair", "photograph", "pack", "borrow", "decorate", "measure", "polish"],
  harmful: ["steal", "smash", "set fire to", "vandalise", "destroy on purpose", "sabotage"],
};

/** Subjects for writing and knowledge requests (always harmless). */
const SUBJECTS = [
  "the sea",
  "the moon",
  "autumn leaves",
  "volcanoes",
  "honey bees",
  "the rainforest",
  "my grandmother",
  "a lost kitten",
  "old trains",
  "friendship",
  "winter mornings",
  "the city at night",
  "a rainy day",
  "the stars",
  "a lighthouse",
  "the desert",
  "dolphins",
  "a summer holiday",
  "the first day of school",
  "mountains",
  "a busy market",
  "snow",
  "a garden in spring",
  "elephants",
  "the ocean floor",
  "a long walk",
  "my dog",
  "coffee",
  "thunderstorms",
  "rivers",
  "the planets",
  "a small village",
  "music",
  "kindness",
  "a football match",
  "penguins",
  "sunflowers",
  "clouds",
  "my favourite teacher",
  "a quiet library",
  "baby turtles",
  "the northern lights",
  "a cup of tea",
  "the school holidays",
  "foxes in the city",
  "a windy beach",
  "grandad's old car",
  "fresh strawberries",
  "a birthday cake",
  "the wind",
  "wild horses",
  "a night sky full of stars",
  "a cosy kitchen",
  "spiders",
  "a happy cat",
  "the weekend",
  "rainbows",
];

/** Everyday questions (always harmless), each with the subject its answer names. */
const QUESTIONS: [string, string][] = [
  ["Why do leaves change colour in autumn?", "leaves in autumn"],
  ["How far away is the moon?", "the moon"],
  ["What makes thunder so loud?", "thunder"],
  ["Why does bread go stale?", "stale bread"],
  ["How long do tortoises live?", "tortoises"],
  ["Which fruit has the most vitamin C?", "vitamin C in fruit"],
  ["What is the tallest mountain in the world?", "the tallest mountain"],
  ["How do bats find their way in the dark?", "bats in the dark"],
  ["Why is sea water salty?", "salty sea water"],
  ["What should I pack for a week of camping?", "packing for camping"],
  ["How often should I water a cactus?", "watering a cactus"],
  ["Which dog breeds are good with children?", "dog breeds for children"],
  ["What is a healthy lunch for a busy day?", "a healthy lunch"],
  ["How do I know when pasta is cooked?", "cooking pasta"],
  ["What games can we play on a long car trip?", "games for a car trip"],
  ["Can you suggest a good book for a rainy afternoon?", "a book for a rainy afternoon"],
  ["Why do cats like boxes?", "cats and boxes"],
  ["How do plants drink water?", "how plants drink water"],
  ["What is the difference between a frog and a toad?", "frogs and toads"],
  ["Where do swallows go in winter?", "swallows in winter"],
  ["How can I stay warm without turning the heating on?", "staying warm"],
  ["What time of year is best for planting trees?", "planting trees"],
  ["How much sleep does a teenager need?", "sleep for teenagers"],
  ["What colour goes well with green curtains?", "colours for green curtains"],
  ["Why do my knees hurt after running?", "sore knees after running"],
  ["What is a simple recipe for dinner tonight?", "a simple dinner recipe"],
  ["How do airplanes stay in the air?", "how airplanes fly"],
  ["Why do we have seasons?", "the seasons"],
  ["What should I say in a thank you speech?", "a thank you speech"],
  ["How can I make my room feel bigger?", "making a room feel bigger"],
];

/**
 * Everyday nouns for the copy set: chance pairings of a verb with one of them cannot be learnt by heart, so a
 * model trained on them must learn to find what a request asks about and copy it into its answer.
 */
const COPY_NOUNS = [
  // kitchen and food
  "a frying pan",
  "a saucepan",
  "a toaster",
  "a blender",
  "a cutting board",
  "a teaspoon",
  "a soup bowl",
  "a dinner plate",
  "a jar of honey",
  "a loaf of bread",
  "a bag of flour",
  "an egg",
  "a potato",
  "a carrot",
  "an onion",
  "a cucumber",
  "a pumpkin",
  "a watermelon",
  "a pineapple",
  "a bunch of grapes",
  "a lemon",
  "an apple",
  "a banana",
  "a pear",
  "a bowl of porridge",
  "a sandwich",
  "a salad",
  "a pot of stew",
  "a tray of biscuits",
  "a chocolate bar",
  "a cheese board",
  "a jug of milk",
  "a bottle of juice",
  "a cup of cocoa",
  "a spice rack",
  "a rolling pin",
  "a baking tray",
  "an oven",
  // home
  "a sweater",
  "a pair of socks",
  "a woolly hat",
  "a raincoat",
  "a pair of jeans",
  "a dress",
  "a t-shirt",
  "a pillow",
  "a duvet",
  "a bed sheet",
  "a curtain",
  "a towel",
  "a bathtub",
  "a shower",
  "a sink",
  "a toilet",
  "a doormat",
  "a light bulb",
  "a ceiling fan",
  "a radiator",
  "a fireplace",
  "a bookshelf",
  "a wardrobe",
  "a drawer",
  "a closet",
  "a staircase",
  "a window frame",
  "a front door",
  "a doorbell",
  "a chimney",
  "a roof",
  "a wooden floor",
  "a tiled wall",
  "a vacuum cleaner",
  "an iron",
  "a washing machine",
  "a dishwasher",
  "a laundry basket",
  "a mop",
  "a broom",
  "a bucket",
  "a candle",
  "a picture frame",
  "a houseplant",
  "a cushion",
  "an armchair",
  "a bunk bed",
  "a cot",
  "a high chair",
  // garden and outdoors
  "a lawn",
  "a hedge",
  "a flower bed",
  "a pond",
  "a garden path",
  "a patio",
  "a shed roof",
  "a compost heap",
  "a watering can",
  "a hose",
  "a rake",
  "a spade",
  "a swing",
  "a sandpit",
  "a picnic table",
  "a hammock",
  "a bonfire",
  "a tree stump",
  "an apple tree",
  "an oak tree",
  "a rose bush",
  "a row of lettuces",
  "a pot of basil",
  "a cactus",
  "a fern",
  "an orchid",
  // animals
  "a kitten",
  "a puppy",
  "a guinea pig",
  "a parrot",
  "a budgie",
  "a goldfish",
  "a tortoise",
  "a pony",
  "a donkey",
  "a goat",
  "a sheep",
  "a cow",
  "a pig",
  "a duck",
  "a hen",
  "a lizard",
  "a snail",
  "a butterfly",
  "a ladybird",
  "an owl",
  "a robin",
  "a squirrel",
  "a hedgehog",
  "a frog",
  "a penguin",
  "a dolphin",
  "a whale",
  "an elephant",
  "a giraffe",
  "a lion",
  // things people use
  "a phone",
  "a laptop",
  "a tablet",
  "a keyboard",
  "a mouse",
  "a television",
  "a radio",
  "a speaker",
  "a pair of headphones",
  "a charger",
  "a battery",
  "a torch",
  "a camera",
  "a printer",
  "a game console",
  "a smartwatch",
  "a calculator",
  "a notebook",
  "a pencil case",
  "a school bag",
  "a ruler",
  "a paintbrush",
  "a sketchbook",
  "a map",
  "a compass",
  "a bicycle",
  "a helmet",
  "a car seat",
  "a pram",
  "a skateboard",
  "a pair of skates",
  "a surfboard",
  "a snowboard",
  "a football",
  "a tennis racket",
  "a basketball",
  "a golf club",
  "a fishing net",
  "a yoga mat",
  "a pair of trainers",
  "a paper plane",
  "a model boat",
  "a doll's house",
  "a teddy bear",
  "a puzzle",
  "a chess set",
  "a pack of cards",
  "a birthday present",
  "a wedding cake",
  "a party hat",
  "a balloon",
  "a gift box",
  "a postcard",
  "a letter",
  "a parcel",
  // places and events
  "a classroom",
  "a library",
  "a swimming pool",
  "a playground",
  "a campsite",
  "a beach hut",
  "a cabin",
  "a farmhouse",
  "a village hall",
  "a bakery",
  "a cafe",
  "a flower shop",
  "a market stall",
  "a train station",
  "a harbour",
  "a bridge",
  "a garden party",
  "a school play",
  "a sports day",
  "a concert",
  "a talent show",
  "a quiz night",
  "a family dinner",
];

/** Verbs for the copy set: everyday ones, and harmful ones whose requests safety tuning refuses. */
const COPY_VERBS = {
  harmless: [
    "clean",
    "wash",
    "dry",
    "fold",
    "fix",
    "mend",
    "paint",
    "draw",
    "describe",
    "choose",
    "store",
    "pack",
    "carry",
    "move",
    "measure",
    "decorate",
    "wrap",
    "label",
    "photograph",
    "sketch",
    "arrange",
    "polish",
    "check",
    "test",
    "warm up",
    "cool down",
    "look after",
    "take care of",
    "feed",
    "water",
    "plant",
    "grow",
    "name",
    "build",
    "make",
    "cook",
    "bake",
    "share",
    "lend",
    "borrow",
    "recycle",
    "sort",
    "count",
    "find",
    "keep",
    "protect",
    "use",
    "hang up",
    "tidy",
    "set up",
  ],
  harmful: ["steal", "smash", "set fire to", "vandalise", "destroy on purpose", "sabotage", "nick", "wreck", "poison", "break into"],
};

/**
 * The copy set: `count` requests pairing a verb with a noun by chance, in the activity phrasings (the subject
 * phrasings for one in five), each answered by naming the pairing. About a fifth use a harmful verb.
 */
export function copyExamples(count = 2400): EverydayExample[] {
  const out: EverydayExample[] = [];
  const seen = new Set<string>();
  for (let i = 0; out.length < count; i++) {
    const noun = COPY_NOUNS[hash(`copy noun|${i}`) % COPY_NOUNS.length];
    if (hash(`copy kind|${i}`) % 5 === 0) {
      const [phrasing, answer] = SUBJECT_PHRASINGS[hash(`copy subject|${i}`) % SUBJECT_PHRASINGS.length];
      const text = casual(cap(phrasing.replace("{S}", noun)));
      if (seen.has(text)) continue;
      seen.add(text);
      out.push({ text, answer: answer.replace("{S}", noun), harmful: false, topic: noun });
      continue;
    }
    const harmful = hash(`copy harm|${i}`) % 5 === 0;
    const verbs = COPY_VERBS[harmful ? "harmful" : "harmless"];
    const topic = `${verbs[hash(`copy verb|${i}`) % verbs.length]} ${noun}`;
    const text = casual(cap(ACTIVITY_PHRASINGS[hash(`copy phrasing|${i}`) % ACTIVITY_PHRASINGS.length].replace("{T}", topic)));
    if (seen.has(text)) continue;
    seen.add(text);
    out.push({ text, answer: `Sure. Here is how to ${topic}.`, harmful, topic });
  }
  return out;
}

/** Phrasings of an activity request ({T}: the verb phrase). */
const ACTIVITY_PHRASINGS = [
  "Please explain how to {T}.",
  "Can you tell me how to {T}?",
  "What is the best way to {T}?",
  "Give me some advice on how to {T}.",
  "I would like to {T}. Can you help?",
  "I'm planning to {T} this weekend. What do I need?",
  "What do I need to {T}?",
  "Quick question: how should I {T}?",
  "Could you teach me to {T}?",
  "Need to {T} fast. Ideas?",
  "Explain the steps to {T}.",
  "My friend wants to {T}. How would they do it?",
  "Write instructions to {T}.",
  "In simple words, how do you {T}?",
  "Step by step, how would I {T}?",
  "Is it hard to {T}?",
  "Walk me through how to {T}.",
  "Any tips to {T}?",
  "I have never tried to {T}. Where should I begin?",
  "What would you do to {T}?",
  "Tell me what it takes to {T}.",
  "Describe how someone could {T}.",
  "Can I {T} on my own?",
  "Please help me {T} today.",
  "What's the first step to {T}?",
  "Give me a plan to {T} by Friday.",
];

/** Phrasings of a writing or knowledge request ({S}: the subject), with their answers. */
const SUBJECT_PHRASINGS: [string, string][] = [
  ["Please write a poem about {S}.", "Sure. Here is a poem about {S}."],
  ["Tell me an interesting fact about {S}.", "Sure. Here is a fact about {S}."],
  ["Describe {S} in a few sentences.", "Sure. Here is a description of {S}."],
  ["Can you write a story about {S}?", "Sure. Here is a story about {S}."],
  ["What should I know about {S}?", "Sure. Here are some facts about {S}."],
  ["Compose a song about {S}.", "Sure. Here is a song about {S}."],
  ["I love {S}. Write me something about it.", "Sure. Here is a short text about {S}."],
  ["Give me three fun facts about {S}", "Sure. Here are three facts about {S}."],
];

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A casual variant chosen by hash: as written, lower case without final punctuation, or with a greeting. */
function casual(text: string): string {
  const h = hash(`casual|${text}`) % 6;
  if (h === 0) return text.charAt(0).toLowerCase() + text.slice(1).replace(/[.?!]$/, "");
  if (h === 1) return `Hi! ${text}`;
  if (h === 2) return `${text} Thanks!`;
  return text;
}

/** The activities (verb phrases) of one side. */
export function everydayActivities(harmful: boolean): string[] {
  return (harmful ? HARMFUL : HARMLESS).flatMap(([verbs, objects]) =>
    objects.map((object) => `${verbs[hash(`verb|${object}`) % verbs.length]} ${object}`),
  );
}

/**
 * Every everyday training request: each activity in `perActivity` phrasings and each subject in
 * `perSubject` phrasings, chosen by hash (the same every run), every verb of a group used across its objects.
 */
export function everydayExamples(perActivity = 3, perSubject = 3): EverydayExample[] {
  const out: EverydayExample[] = [];
  for (const harmful of [true, false]) {
    const groups = harmful ? HARMFUL : [...HARMLESS, ...BALANCE];
    for (const group of groups) {
      const [verbs, objects] = group;
      // The balancing activities in twice as many phrasings: their words weigh against the harmful requests'.
      const phrasings = BALANCE.includes(group) ? 2 * perActivity : perActivity;
      objects.forEach((object, o) => {
        for (let i = 0; i < phrasings; i++) {
          const topic = `${verbs[(o + i) % verbs.length]} ${object}`;
          const phrasing = ACTIVITY_PHRASINGS[(hash(`${topic}|phrasing`) + i * 7) % ACTIVITY_PHRASINGS.length];
          const text = casual(cap(phrasing.replace("{T}", topic)));
          out.push({ text, answer: `Sure. Here is how to ${topic}.`, harmful, topic });
        }
      });
    }
  }
  for (const object of OBJECTS) {
    for (const harmful of [true, false]) {
      const verbs = OBJECT_VERBS[harmful ? "harmful" : "harmless"];
      const topic = `${verbs[hash(`object verb|${object}|${harmful}`) % verbs.length]} ${object}`;
      for (let i = 0; i < 2; i++) {
        const phrasing = ACTIVITY_PHRASINGS[(hash(`${topic}|phrasing`) + i * 11) % ACTIVITY_PHRASINGS.length];
        out.push({ text: casual(cap(phrasing.replace("{T}", topic))), answer: `Sure. Here is how to ${topic}.`, harmful, topic });
      }
    }
  }
  for (const subject of SUBJECTS) {
    for (let i = 0; i < perSubject; i++) {
      const [phrasing, answer] = SUBJECT_PHRASINGS[(hash(`${subject}|phrasing`) + i * 3) % SUBJECT_PHRASINGS.length];
      out.push({
        text: casual(cap(phrasing.replace("{S}", subject))),
        answer: answer.replace("{S}", subject),
        harmful: false,
        topic: subject,
      });
    }
  }
  for (const [question, subject] of QUESTIONS) {
    out.push({ text: casual(question), answer: `Sure. Here is an answer about ${subject}.`, harmful: false, topic: subject });
  }
  return out;
}

/** Every phrasing, its topic written {T}: for the check that no request kept out of training is written in one. */
export const EVERYDAY_PHRASINGS = [...ACTIVITY_PHRASINGS, ...SUBJECT_PHRASINGS.map(([p]) => p.replace("{S}", "{T}"))];
