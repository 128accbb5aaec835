// Private: the registry's selector factory, for tests that wrap a selector.
#pragma once

#include <backends/selector.hpp>

#include <memory>
#include <string_view>

namespace aio::detail {

// A new selector of the named compiled-in backend; std::invalid_argument otherwise.
std::unique_ptr<Selector> make_selector(std::string_view name);

}  // namespace aio::detail
