"""The built-in list of assets the simulated market trades: well-known US stocks, two index funds and crypto.

Each asset has a typical price the simulation wanders around (roughly
where it traded lately) and an annual volatility like its own. They only
anchor the simulation: every figure the simulated market shows is invented.
"""

from __future__ import annotations

from dataclasses import dataclass

STOCK, FUND, CRYPTO = "stock", "etf", "crypto"


@dataclass(frozen=True)
class Asset:
    """One tradable symbol."""

    symbol: str
    name: str
    exchange: str
    asset_class: str  # stock, etf or crypto
    base_price: float  # USD, the level the simulated price wanders around
    volatility: float  # annual, as a fraction

    @property
    def trades_around_the_clock(self) -> bool:
        return self.asset_class == CRYPTO


def _stock(symbol: str, name: str, exchange: str, price: float, volatility: float = 0.30) -> Asset:
    return Asset(symbol, name, exchange, STOCK, price, volatility)


ASSETS: tuple[Asset, ...] = (
    _stock("AAPL", "Apple Inc.", "NASDAQ", 230, 0.28),
    _stock("MSFT", "Microsoft Corporation", "NASDAQ", 420, 0.25),
    _stock("GOOGL", "Alphabet Inc. Class A", "NASDAQ", 170, 0.28),
    _stock("AMZN", "Amazon.com, Inc.", "NASDAQ", 200, 0.32),
    _stock("META", "Meta Platforms, Inc.", "NASDAQ", 580, 0.38),
    _stock("TSLA", "Tesla, Inc.", "NASDAQ", 330, 0.60),
    _stock("NVDA", "NVIDIA Corporation", "NASDAQ", 140, 0.50),
    _stock("NFLX", "Netflix, Inc.", "NASDAQ", 1000, 0.40),
    _stock("AMD", "Advanced Micro Devices, Inc.", "NASDAQ", 150, 0.50),
    _stock("INTC", "Intel Corporation", "NASDAQ", 22, 0.35),
    _stock("ADBE", "Adobe Inc.", "NASDAQ", 450, 0.33),
    _stock("PYPL", "PayPal Holdings, Inc.", "NASDAQ", 70, 0.40),
    _stock("PEP", "PepsiCo, Inc.", "NASDAQ", 150, 0.18),
    _stock("COST", "Costco Wholesale Corporation", "NASDAQ", 900, 0.20),
    _stock("ABNB", "Airbnb, Inc.", "NASDAQ", 130, 0.45),
    _stock("IBM", "International Business Machines Corporation", "NYSE", 220, 0.22),
    _stock("ORCL", "Oracle Corporation", "NYSE", 170, 0.30),
    _stock("CRM", "Salesforce, Inc.", "NYSE", 280, 0.35),
    _stock("UBER", "Uber Technologies, Inc.", "NYSE", 75, 0.45),
    _stock("SHOP", "Shopify Inc.", "NYSE", 100, 0.60),
    _stock("SPOT", "Spotify Technology S.A.", "NYSE", 600, 0.45),
    _stock("DIS", "The Walt Disney Company", "NYSE", 110, 0.28),
    _stock("KO", "The Coca-Cola Company", "NYSE", 68, 0.16),
    _stock("MCD", "McDonald's Corporation", "NYSE", 290, 0.18),
    _stock("NKE", "NIKE, Inc.", "NYSE", 75, 0.30),
    _stock("WMT", "Walmart Inc.", "NYSE", 85, 0.20),
    _stock("JPM", "JPMorgan Chase & Co.", "NYSE", 240, 0.25),
    _stock("BAC", "Bank of America Corporation", "NYSE", 44, 0.30),
    _stock("GS", "The Goldman Sachs Group, Inc.", "NYSE", 580, 0.28),
    _stock("V", "Visa Inc.", "NYSE", 320, 0.22),
    _stock("MA", "Mastercard Incorporated", "NYSE", 530, 0.24),
    _stock("XOM", "Exxon Mobil Corporation", "NYSE", 110, 0.30),
    _stock("CVX", "Chevron Corporation", "NYSE", 150, 0.30),
    _stock("BA", "The Boeing Company", "NYSE", 170, 0.40),
    _stock("F", "Ford Motor Company", "NYSE", 10.5, 0.38),
    _stock("GM", "General Motors Company", "NYSE", 55, 0.38),
    _stock("T", "AT&T Inc.", "NYSE", 27, 0.22),
    _stock("VZ", "Verizon Communications Inc.", "NYSE", 42, 0.18),
    _stock("PFE", "Pfizer Inc.", "NYSE", 25, 0.22),
    _stock("JNJ", "Johnson & Johnson", "NYSE", 155, 0.16),
    _stock("AVGO", "Broadcom Inc.", "NASDAQ", 170, 0.45),
    _stock("CSCO", "Cisco Systems, Inc.", "NASDAQ", 58, 0.22),
    _stock("QCOM", "QUALCOMM Incorporated", "NASDAQ", 160, 0.35),
    _stock("TXN", "Texas Instruments Incorporated", "NASDAQ", 190, 0.28),
    _stock("MU", "Micron Technology, Inc.", "NASDAQ", 100, 0.50),
    _stock("ASML", "ASML Holding N.V.", "NASDAQ", 700, 0.40),
    _stock("SBUX", "Starbucks Corporation", "NASDAQ", 95, 0.28),
    _stock("BKNG", "Booking Holdings Inc.", "NASDAQ", 4800, 0.30),
    _stock("PLTR", "Palantir Technologies Inc.", "NASDAQ", 70, 0.65),
    _stock("COIN", "Coinbase Global, Inc.", "NASDAQ", 250, 0.80),
    _stock("HOOD", "Robinhood Markets, Inc.", "NASDAQ", 40, 0.70),
    _stock("ZM", "Zoom Communications, Inc.", "NASDAQ", 80, 0.40),
    _stock("ROKU", "Roku, Inc.", "NASDAQ", 75, 0.60),
    _stock("MRNA", "Moderna, Inc.", "NASDAQ", 40, 0.60),
    _stock("GILD", "Gilead Sciences, Inc.", "NASDAQ", 90, 0.22),
    _stock("TSM", "Taiwan Semiconductor Manufacturing Company", "NYSE", 190, 0.38),
    _stock("BABA", "Alibaba Group Holding Limited", "NYSE", 90, 0.45),
    _stock("SONY", "Sony Group Corporation", "NYSE", 20, 0.28),
    _stock("TM", "Toyota Motor Corporation", "NYSE", 175, 0.25),
    _stock("NVO", "Novo Nordisk A/S", "NYSE", 90, 0.40),
    _stock("UNH", "UnitedHealth Group Incorporated", "NYSE", 550, 0.28),
    _stock("LLY", "Eli Lilly and Company", "NYSE", 800, 0.32),
    _stock("MRK", "Merck & Co., Inc.", "NYSE", 100, 0.22),
    _stock("ABBV", "AbbVie Inc.", "NYSE", 180, 0.22),
    _stock("HD", "The Home Depot, Inc.", "NYSE", 400, 0.22),
    _stock("LOW", "Lowe's Companies, Inc.", "NYSE", 260, 0.25),
    _stock("TGT", "Target Corporation", "NYSE", 130, 0.32),
    _stock("CMG", "Chipotle Mexican Grill, Inc.", "NYSE", 58, 0.32),
    _stock("MAR", "Marriott International, Inc.", "NASDAQ", 280, 0.28),
    _stock("DAL", "Delta Air Lines, Inc.", "NYSE", 60, 0.40),
    _stock("UAL", "United Airlines Holdings, Inc.", "NASDAQ", 90, 0.50),
    _stock("CAT", "Caterpillar Inc.", "NYSE", 380, 0.28),
    _stock("DE", "Deere & Company", "NYSE", 420, 0.26),
    _stock("GE", "GE Aerospace", "NYSE", 180, 0.32),
    _stock("HON", "Honeywell International Inc.", "NASDAQ", 220, 0.20),
    _stock("LMT", "Lockheed Martin Corporation", "NYSE", 520, 0.20),
    _stock("RTX", "RTX Corporation", "NYSE", 120, 0.22),
    _stock("UPS", "United Parcel Service, Inc.", "NYSE", 130, 0.25),
    _stock("FDX", "FedEx Corporation", "NYSE", 280, 0.30),
    _stock("C", "Citigroup Inc.", "NYSE", 70, 0.30),
    _stock("WFC", "Wells Fargo & Company", "NYSE", 70, 0.28),
    _stock("MS", "Morgan Stanley", "NYSE", 130, 0.28),
    _stock("AXP", "American Express Company", "NYSE", 290, 0.28),
    _stock("BLK", "BlackRock, Inc.", "NYSE", 1000, 0.25),
    _stock("SNOW", "Snowflake Inc.", "NYSE", 170, 0.55),
    _stock("NET", "Cloudflare, Inc.", "NYSE", 110, 0.55),
    Asset("SPY", "SPDR S&P 500 ETF Trust", "NYSE Arca", FUND, 580, 0.17),
    Asset("QQQ", "Invesco QQQ Trust", "NASDAQ", FUND, 500, 0.22),
    Asset("BTC", "Bitcoin", "Crypto", CRYPTO, 95000, 0.65),
    Asset("ETH", "Ethereum", "Crypto", CRYPTO, 3300, 0.80),
    Asset("SOL", "Solana", "Crypto", CRYPTO, 190, 1.10),
    Asset("XRP", "XRP", "Crypto", CRYPTO, 2.2, 0.90),
    Asset("DOGE", "Dogecoin", "Crypto", CRYPTO, 0.3, 1.20),
    Asset("ADA", "Cardano", "Crypto", CRYPTO, 0.8, 1.00),
    Asset("LTC", "Litecoin", "Crypto", CRYPTO, 100, 0.85),
    Asset("AVAX", "Avalanche", "Crypto", CRYPTO, 30, 1.10),
    Asset("DOT", "Polkadot", "Crypto", CRYPTO, 7, 1.00),
    Asset("LINK", "Chainlink", "Crypto", CRYPTO, 20, 1.00),
    Asset("BCH", "Bitcoin Cash", "Crypto", CRYPTO, 450, 0.85),
    Asset("XLM", "Stellar", "Crypto", CRYPTO, 0.4, 0.95),
)

BY_SYMBOL: dict[str, Asset] = {asset.symbol: asset for asset in ASSETS}
