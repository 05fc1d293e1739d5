"""Small pools of names, streets and company words, drawn once from Faker zh_CN.

Everything per row is sampled from these pools with numpy, so the cost of Faker does not grow
with the number of persons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Uyghur and Kazakh given names (transliterated), for two-part names joined by a middle dot.
_DOTTED_MALE = (
    "买买提", "艾力", "阿不都", "吐尔逊", "艾合买提", "热合曼", "亚森", "努尔兰", "阿迪力",
    "肉孜", "玉素甫", "艾尔肯", "库尔班", "阿里木", "伊力哈木", "塔依尔", "吾斯曼", "依明",
    "哈力克", "叶尔兰", "别克", "达吾提", "米吉提", "托合提",
)  # fmt: skip
_DOTTED_FEMALE = (
    "古丽", "阿依古丽", "热依拉", "迪丽热巴", "帕提古丽", "阿依努尔", "米娜瓦尔", "努尔古丽",
    "再娜甫", "阿曼古丽", "布合力其", "祖丽菲亚", "玛依拉", "古再丽", "海米提", "阿娜尔",
)  # fmt: skip
INDUSTRIES = (
    "电子", "机械", "纺织", "服饰", "建材", "物流", "贸易", "食品", "医疗器械", "新材料",
    "环保", "信息技术", "网络", "软件", "文化传媒", "餐饮", "汽车配件", "五金", "化工",
    "农业", "茶业", "家居", "光电", "智能装备", "印染", "水产", "建筑工程", "装饰工程",
    "电器", "塑料", "包装", "教育咨询", "旅游", "印务", "生物", "能源", "阀门", "轴承",
)  # fmt: skip
# suffix by 企业类型
SUFFIXES = {
    "有限责任公司": ("有限公司", "科技有限公司", "实业有限公司"),
    "股份有限公司": ("股份有限公司", "科技股份有限公司", "集团股份有限公司"),
    "个人独资企业": ("经营部", "商行", "加工厂"),
    "合伙企业": (
        "投资合伙企业（有限合伙）", "咨询服务中心（普通合伙）", "企业管理合伙企业（有限合伙）"
    ),
}  # fmt: skip


_BRAND_CHARS = tuple(
    "鑫华恒泰盛达宏博嘉瑞祥兴隆昌丰源信德安康越钱江海天金银新永正诚佳美远通汇盈豪锦润辉"
)
_FAKER_INDUSTRY = ("国际公司", "公司", "电子", "信息", "软件", "计算机", "科技", "数字", "电脑")


def _brand_words(prefixes: np.ndarray) -> np.ndarray:
    """Faker's company prefixes without their industry word, Chinese characters only."""
    out = set()
    for word in prefixes.tolist():
        for suffix in _FAKER_INDUSTRY:
            word = word.removesuffix(suffix)
        if len(word) >= 2 and not any(c.isascii() for c in word):
            out.add(word)
    return np.array(sorted(out), dtype=object)


@dataclass(frozen=True)
class Pools:
    last_names: np.ndarray
    male_first: np.ndarray
    female_first: np.ndarray
    dotted_male: np.ndarray
    dotted_female: np.ndarray
    streets: np.ndarray
    company_words: np.ndarray

    @classmethod
    def build(cls, seed: int, size: int = 2000) -> Pools:
        """Draw the pools from a Faker zh_CN instance seeded with ``seed``.

        Faker's weighted lists (common surnames first) keep their weights because each pool is
        ``size`` draws, duplicates included.
        """
        from faker import Faker

        fake = Faker("zh_CN")
        fake.seed_instance(seed)

        def draw(method: str, n: int) -> np.ndarray:
            return np.array([getattr(fake, method)() for _ in range(n)], dtype=object)

        streets = np.unique(draw("street_name", size // 2))
        streets = streets[np.char.str_len(streets.astype(str)) <= 6]
        rng = np.random.default_rng(seed)
        first, second = pick(rng, _BRAND_CHARS, size), pick(rng, _BRAND_CHARS, size)
        brands = np.unique((first + second)[first != second])
        words = np.unique(np.concatenate([_brand_words(draw("company_prefix", size // 4)), brands]))
        return cls(
            last_names=draw("last_name", size),
            male_first=draw("first_name_male", size),
            female_first=draw("first_name_female", size),
            dotted_male=np.array(_DOTTED_MALE, dtype=object),
            dotted_female=np.array(_DOTTED_FEMALE, dtype=object),
            streets=streets,
            company_words=words,
        )


def pick(rng: np.random.Generator, pool: np.ndarray | tuple[str, ...], n: int) -> np.ndarray:
    """``n`` uniform draws from a pool, as an object array."""
    values = np.asarray(pool, dtype=object)
    return values[rng.integers(0, len(values), size=n)]


def numbers(values: np.ndarray) -> np.ndarray:
    """Integers as an object array of decimal strings."""
    return np.asarray(values, dtype=np.int64).astype("U20").astype(object)


def zfill(values: np.ndarray, width: int) -> np.ndarray:
    """Non-negative integers as zero-padded strings (object array)."""
    text = np.asarray(values, dtype=np.int64).astype("U20")
    return np.strings.zfill(text, width).astype(object) if text.size else text.astype(object)


def street_addresses(rng: np.random.Generator, pools: Pools, n: int, rooms: float) -> np.ndarray:
    """'文三路123号' and, for a share ``rooms`` of them, '5幢2单元301室' appended."""
    street = pick(rng, pools.streets, n) + numbers(rng.integers(1, 400, size=n)) + "号"
    room = (
        numbers(rng.integers(1, 30, size=n))
        + "幢"
        + numbers(rng.integers(1, 5, size=n))
        + "单元"
        + numbers(rng.integers(1, 25, size=n) * 100 + rng.integers(1, 5, size=n))
        + "室"
    )
    return np.where(rng.random(n) < rooms, street + room, street)
