/**
 * What the demo model knows about the world: a small table of topics (plural nouns) and true,
 * simple sentences about each. The corpus generator writes answers from these sentences, and the
 * scorer accepts an answer when every sentence of it is one of the topic's sentences (so a
 * grammatical, true sentence about another topic, or a garbled one, is a miss).
 */

export interface Topic {
  /** As asked about: "cats". */
  plural: string;
  /** Three to five true sentences. */
  facts: string[];
}

const animal = (plural: string, adj: string, can: string, eats: string, lives: string, extra: string): Topic => ({
  plural,
  facts: [`${cap(plural)} are ${adj} animals.`, `${cap(plural)} can ${can}.`, `${cap(plural)} eat ${eats}.`, `${cap(plural)} live ${lives}.`, extra],
});
const food = (plural: string, color: string, grows: string, extra: string): Topic => ({
  plural,
  facts: [`${cap(plural)} are ${color}.`, `${cap(plural)} grow ${grows}.`, `People eat ${plural} every day.`, extra],
});
const thing = (plural: string, what: string, use: string, extra: string): Topic => ({
  plural,
  facts: [`${cap(plural)} are ${what}.`, `People use ${plural} to ${use}.`, extra],
});

function cap(s: string): string {
  return s[0]!.toUpperCase() + s.slice(1);
}

export const TOPICS: readonly Topic[] = [
  animal('cats', 'small', 'climb trees', 'fish and meat', 'in houses with people', 'Many people keep cats as pets.'),
  animal('dogs', 'friendly', 'run very fast', 'meat', 'in houses with people', 'Dogs like to play with a ball.'),
  animal('horses', 'big', 'run for a long time', 'grass and hay', 'on farms', 'People ride horses.'),
  animal('cows', 'big', 'walk slowly', 'grass', 'on farms', 'Cows give us milk.'),
  animal('sheep', 'gentle', 'climb hills', 'grass', 'on farms', 'Sheep give us wool.'),
  animal('birds', 'small', 'fly', 'seeds and insects', 'in trees', 'Birds build nests.'),
  animal('fish', 'quiet', 'swim', 'small plants', 'in water', 'Fish breathe with gills.'),
  animal('bees', 'busy', 'fly from flower to flower', 'nectar', 'in hives', 'Bees make honey.'),
  animal('frogs', 'green', 'jump far', 'insects', 'near ponds', 'Frogs start life as tadpoles.'),
  animal('owls', 'wise', 'see in the dark', 'mice', 'in forests', 'Owls hunt at night.'),
  animal('rabbits', 'soft', 'hop', 'carrots and grass', 'in burrows', 'Rabbits have long ears.'),
  animal('foxes', 'clever', 'hear very well', 'mice and berries', 'in forests', 'Foxes have a bushy tail.'),
  animal('bears', 'strong', 'climb trees', 'berries and fish', 'in forests', 'Bears sleep in winter.'),
  animal('whales', 'huge', 'swim far', 'small fish', 'in the sea', 'Whales breathe air.'),
  animal('ducks', 'happy', 'swim and fly', 'plants and bugs', 'near lakes', 'Ducks have webbed feet.'),
  animal('mice', 'tiny', 'squeeze into small holes', 'seeds and cheese', 'in fields and houses', 'Mice have long tails.'),
  animal('lions', 'strong', 'run fast', 'meat', 'in Africa', 'Lions live in groups called prides.'),
  animal('elephants', 'huge', 'lift heavy logs', 'leaves and grass', 'in Africa and Asia', 'Elephants have long trunks.'),
  animal('penguins', 'funny', 'swim very well', 'fish', 'in cold places', 'Penguins cannot fly.'),
  animal('turtles', 'slow', 'hide in their shells', 'plants and worms', 'in water and on land', 'Turtles can live for a long time.'),
  food('apples', 'red or green', 'on trees', 'Apples are sweet and crunchy.'),
  food('bananas', 'yellow', 'in warm places', 'Bananas are soft and sweet.'),
  food('oranges', 'orange', 'on trees', 'Oranges are full of juice.'),
  food('carrots', 'orange', 'in the ground', 'Rabbits like carrots.'),
  food('tomatoes', 'red', 'in gardens', 'Tomatoes are used in salads.'),
  food('potatoes', 'brown', 'in the ground', 'Potatoes can be boiled or fried.'),
  food('grapes', 'green or purple', 'on vines', 'Grapes grow in bunches.'),
  food('lemons', 'yellow', 'on trees', 'Lemons taste sour.'),
  thing('books', 'made of paper', 'read stories', 'A library has many books.'),
  thing('trains', 'long and fast', 'travel between cities', 'Trains run on rails.'),
  thing('boats', 'made to float', 'cross rivers and seas', 'Some boats have sails.'),
  thing('bicycles', 'light and quiet', 'ride to work', 'Bicycles have two wheels.'),
  thing('clocks', 'useful', 'tell the time', 'Clocks have hands or numbers.'),
  thing('cars', 'fast', 'drive on roads', 'Cars have four wheels.'),
  thing('computers', 'smart machines', 'write and count', 'Computers run programs.'),
  thing('bridges', 'strong', 'cross rivers', 'Some bridges are very long.'),
  thing('trees', 'tall plants', 'build houses', 'Trees have green leaves.'),
  thing('rivers', 'long', 'carry boats', 'Rivers flow to the sea.'),
  thing('mountains', 'very high', 'ski in winter', 'Some mountains have snow on top.'),
  thing('stars', 'far away', 'find the way at night', 'Stars shine at night.'),
];

/** The ways a user asks for sentences about a topic. */
export const ABOUT_PROMPTS: readonly ((t: string) => string)[] = [
  (t) => `Tell me about ${t}.`,
  (t) => `What do you know about ${t}?`,
  (t) => `Describe ${t}.`,
  (t) => `Write a few sentences about ${t}.`,
  (t) => `Can you tell me about ${t}?`,
  (t) => `Tell me something about ${t}.`,
];

export interface AboutScore {
  /** Every sentence is one of the topic's facts, 2 to 5 sentences, none repeated. */
  correct: boolean;
  /** Every sentence is a sentence of the table (any topic): grammatical English by construction. */
  grammatical: boolean;
}

/** Split an answer into sentences ("Cats are small animals. Cats can climb trees."). */
export function sentencesOf(answer: string): string[] {
  return answer.trim().split(/(?<=\.)\s+/).filter((s) => s !== '');
}

const ALL_FACTS = new Set(TOPICS.flatMap((t) => t.facts));

export function scoreAbout(topic: Topic, answer: string): AboutScore {
  const s = sentencesOf(answer);
  const own = new Set(topic.facts);
  const distinct = new Set(s).size === s.length;
  const sized = s.length >= 2 && s.length <= 5;
  return {
    correct: sized && distinct && s.every((x) => own.has(x)),
    grammatical: sized && s.every((x) => ALL_FACTS.has(x)),
  };
}
